"""Exclusive GPUs on a shared box: each running job holds its devices; the others wait in line.

The order of the line is gpu_line.py's, a pure function of who holds what, who waits, each
user's recent usage and the time: strict first come, first served (`fifo`), fair share between
users (`fair`), or fair share with reservations and backfill (`backfill`, the default). This
module keeps the state that function reads, under one lock, charges each running job's
GPU-seconds to its owner (fair_share.py), and hands devices to the jobs each plan names.

A job may wait in line before its image is here (`ready=False`): it keeps its place, holds up
nobody, and can only be given devices once `ready(job_id)` says the image arrived.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from tao_server.jobs.gpus import gpu_line
from tao_server.jobs.gpus.fair_share import DEFAULT_HALF_LIFE, Account, Usage
from tao_server.jobs.gpus.gpu_line import Holding, LineRule, Wait, Waiting

log = logging.getLogger(__name__)

# Seconds between fresh plans while jobs wait: usage decays and grows as time passes, so the order
# of the line (and who may take an idle device) can change without any job arriving or ending.
REPLAN_INTERVAL = 2.0
# Seconds from a stopped job's end to its devices going to the next job: seeing the end, recording it.
HAND_OFF_SLACK = 1.0


@dataclass
class _InLine:
    waiting: Waiting
    granted: Callable[[list[str]], None]


@dataclass
class _Held:
    devices: list[str]
    owner: Account
    charged_to: float  # the time up to which its GPU-seconds were charged to its owner
    ends_by: float | None


class GpuScheduler:
    def __init__(
        self,
        inventory: list[str],
        rule: LineRule = LineRule.backfill,
        half_life: float = DEFAULT_HALF_LIFE,
        grace: float = 0.0,
        clock: Callable[[], float] = time.time,
        replan_interval: float | None = None,
    ) -> None:
        """`grace`: seconds past its time limit that a job may still hold its devices (the stop timeout, the hand-off)."""
        self.inventory = list(inventory)
        self.rule = rule
        self._grace = grace
        self._clock = clock
        self._usage = Usage(half_life)
        self._held: dict[str, _Held] = {}  # job id -> its devices
        self._line: dict[str, _InLine] = {}  # job id -> its place
        self._waits: dict[str, Wait] = {}  # as the last plan left them
        self._arrivals = itertools.count(1)
        self._lock = threading.Lock()
        self._replan_interval = replan_interval
        self._replanner: threading.Thread | None = None

    @property
    def half_life(self) -> float:
        """Seconds after which usage counts half (fair_share.py)."""
        return self._usage.half_life

    def request(
        self,
        job_id: str,
        request: str,
        granted: Callable[[list[str]], None],
        owner: Account = None,
        cap: int | None = None,
        *,
        shares: float = 1.0,
        time_limit: float | None = None,
        ready: bool = True,
        seq: int | None = None,
    ) -> None:
        """Put the job in line; `granted(devices)` is called, from whichever thread freed them, when its turn comes.

        Waiting takes no thread: a thousand queued GPU jobs hold up nothing else. `seq` orders jobs
        of one user (the job table's; arrival order without it): a job put back in line keeps it.
        """
        place = seq if seq is not None else next(self._arrivals)
        waiting = Waiting(job_id, request, place, owner, cap, shares, time_limit, ready)
        with self._lock:
            self._line[job_id] = _InLine(waiting, granted)
            grants = self._dispatch()
        self._start_replanning()
        _notify(grants)

    def ready(self, job_id: str) -> bool:
        """The job's image is here: it may now be given devices. False when it was not waiting."""
        with self._lock:
            entry = self._line.get(job_id)
            if entry is None:
                return False
            entry.waiting = replace(entry.waiting, ready=True)
            grants = self._dispatch()
        _notify(grants)
        return True

    def withdraw(self, job_id: str) -> bool:
        """Take a waiting job out of line (it was cancelled); False when it was not waiting any more."""
        with self._lock:
            if self._line.pop(job_id, None) is None:
                return False
            grants = self._dispatch()  # a large job leaving the head lets the ones behind it through
        _notify(grants)
        return True

    def acquire(
        self, job_id: str, request: str, stop_when: Callable[[], bool], owner: Account = None, cap: int | None = None
    ) -> list[str] | None:
        """The blocking form of request(): the job's devices, or None when `stop_when()` turned true first."""
        given: list[list[str]] = []
        done = threading.Event()

        def granted(devices: list[str]) -> None:
            given.append(devices)
            done.set()

        self.request(job_id, request, granted, owner, cap)
        while not done.wait(0.1):
            if stop_when() and self.withdraw(job_id):
                return None
        return given[0]

    def hold(
        self, job_id: str, devices: list[str], owner: Account = None, since: float | None = None, time_limit: float | None = None
    ) -> None:
        """Devices a job already has, as found after a daemon restart; `since`: when it got them (None: now)."""
        started = since if since is not None else self._clock()
        ends_by = started + time_limit + self._grace if time_limit is not None else None
        with self._lock:
            self._held[job_id] = _Held(list(devices), owner, started, ends_by)

    def release(self, job_id: str) -> None:
        with self._lock:
            held = self._held.pop(job_id, None)
            if held is not None:
                self._charge(held, self._clock())
            grants = self._dispatch()
        _notify(grants)

    def charge(self, owner: Account, gpu_seconds: float, at: float) -> None:
        """Count GPU-seconds a job used before this daemon started (it ended at `at`) toward its owner's share."""
        with self._lock:
            self._usage.add(owner, gpu_seconds, at)

    def usage(self, owner: Account) -> float:
        """The owner's decayed GPU-seconds now, their running jobs' included."""
        with self._lock:
            now = self._clock()
            running = sum(len(held.devices) * max(0.0, now - held.charged_to) for held in self._held.values() if held.owner == owner)
            return self._usage.of(owner, now) + running

    def position(self, job_id: str) -> int | None:
        """1 for the next job to get GPUs; None for a job that is not waiting for GPUs.

        Jobs ahead that wait aside (at their owner's cap, or for their image) do not count: they let the others pass.
        """
        wait = self.wait(job_id)
        return wait.position if wait is not None else None

    def wait(self, job_id: str) -> Wait | None:
        """Why the job waits, as the last plan found (gpu_line.Wait); None for a job that is not waiting."""
        with self._lock:
            return self._waits.get(job_id) if job_id in self._line else None

    def can_ever_fit(self, request: str) -> bool:
        """Whether this host has the devices a request names (a restart may have changed the inventory)."""
        kind, _, value = request.partition(":")
        if kind == "ids":
            return all(device in self.inventory for device in value.split(","))
        return 0 < self.size(request) <= len(self.inventory)

    def holders(self) -> dict[str, str | None]:
        with self._lock:
            by_device = {device: job_id for job_id, held in self._held.items() for device in held.devices}
        return {device: by_device.get(device) for device in self.inventory}

    def size(self, request: str) -> int:
        """How many devices a request takes."""
        return gpu_line.size(request, self.inventory)

    def _dispatch(self) -> list[tuple[_InLine, list[str]]]:
        """Plan the line, and give devices to the jobs the plan names; called with the lock held."""
        now = self._clock()
        for held in self._held.values():  # usage runs on while jobs hold devices
            self._charge(held, now)
        holding = [Holding(job_id, tuple(held.devices), held.owner, held.ends_by) for job_id, held in self._held.items()]
        waiting = [entry.waiting for entry in self._line.values()]
        made = gpu_line.plan(self.inventory, holding, waiting, lambda owner: self._usage.of(owner, now), self.rule, now, self._grace)
        grants = []
        for grant in made.grants:
            entry = self._line.pop(grant.job_id)
            limit = entry.waiting.time_limit
            ends_by = now + limit + self._grace if limit is not None else None
            self._held[grant.job_id] = _Held(grant.devices, entry.waiting.owner, now, ends_by)
            grants.append((entry, grant.devices))
        self._waits = made.waits
        return grants

    def _charge(self, held: _Held, now: float) -> None:
        if now > held.charged_to:
            self._usage.add(held.owner, len(held.devices) * (now - held.charged_to), now)
            held.charged_to = now

    def _start_replanning(self) -> None:
        if self._replan_interval is None or self._replanner is not None:
            return
        self._replanner = threading.Thread(target=self._replan, name="gpu-line", daemon=True)
        self._replanner.start()

    def _replan(self) -> None:
        """Plan again now and then while jobs wait (the daemon's life long): new grants, and fresh places to show."""
        assert self._replan_interval is not None
        while True:
            time.sleep(self._replan_interval)
            with self._lock:
                grants = self._dispatch() if self._line else []
            _notify(grants)


def _notify(grants: list[tuple[_InLine, list[str]]]) -> None:
    for entry, devices in grants:
        try:
            entry.granted(devices)
        except Exception:  # one broken hand-over must not strand the other grants' devices
            log.exception("handing GPUs %s to job %s failed", devices, entry.waiting.job_id)

"""Exclusive GPUs on a shared box: each running job holds its devices; the others wait in line.

First come, first served: a job that fits never overtakes an earlier one that does not fit yet,
so a job asking for many GPUs is never starved by a stream of small ones. The one exception is a
job whose owner is at their GPU cap (policy.py): it waits without holding up the line, or one
user's backlog would stop everyone else.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class _Waiting:
    job_id: str
    request: str
    owner: int | None
    cap: int | None
    granted: Callable[[list[str]], None]


class GpuScheduler:
    def __init__(self, inventory: list[str]) -> None:
        self.inventory = list(inventory)
        self._holders: dict[str, str] = {}  # device -> job id
        self._owners: dict[str, int | None] = {}  # job id -> owner uid, for jobs holding devices
        self._line: list[_Waiting] = []  # oldest first
        self._lock = threading.Lock()

    def request(
        self, job_id: str, request: str, granted: Callable[[list[str]], None], owner: int | None = None, cap: int | None = None
    ) -> None:
        """Put the job in line; `granted(devices)` is called, from whichever thread freed them, when its turn comes.

        Waiting takes no thread: a thousand queued GPU jobs hold up nothing else.
        """
        with self._lock:
            self._line.append(_Waiting(job_id, request, owner, cap, granted))
            grants = self._dispatch()
        _notify(grants)

    def withdraw(self, job_id: str) -> bool:
        """Take a waiting job out of line (it was cancelled); False when it was not waiting any more."""
        with self._lock:
            waiting = next((w for w in self._line if w.job_id == job_id), None)
            if waiting is None:
                return False
            self._line.remove(waiting)
            grants = self._dispatch()  # a large job leaving the head lets the ones behind it through
        _notify(grants)
        return True

    def acquire(
        self, job_id: str, request: str, stop_when: Callable[[], bool], owner: int | None = None, cap: int | None = None
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

    def hold(self, job_id: str, devices: list[str], owner: int | None = None) -> None:
        """Devices a job already has, as found after a daemon restart."""
        with self._lock:
            for device in devices:
                self._holders[device] = job_id
            self._owners[job_id] = owner

    def release(self, job_id: str) -> None:
        with self._lock:
            for device in [d for d, holder in self._holders.items() if holder == job_id]:
                del self._holders[device]
            self._owners.pop(job_id, None)
            grants = self._dispatch()
        _notify(grants)

    def position(self, job_id: str) -> int | None:
        """1 for the next job to get GPUs; None for a job that is not waiting for GPUs.

        Jobs ahead whose owners are at their cap do not count: they let the others pass.
        """
        with self._lock:
            ahead = 0
            for waiting in self._line:
                if waiting.job_id == job_id:
                    return ahead + 1
                ahead += not self._capped(waiting)
            return None

    def can_ever_fit(self, request: str) -> bool:
        """Whether this host has the devices a request names (a restart may have changed the inventory)."""
        kind, _, value = request.partition(":")
        if kind == "ids":
            return all(device in self.inventory for device in value.split(","))
        return 0 < self.size(request) <= len(self.inventory)

    def holders(self) -> dict[str, str | None]:
        with self._lock:
            return {device: self._holders.get(device) for device in self.inventory}

    def size(self, request: str) -> int:
        """How many devices a request takes."""
        kind, _, value = request.partition(":")
        if kind == "count":
            return int(value)
        return len(value.split(",")) if kind == "ids" else len(self.inventory)

    def _dispatch(self) -> list[tuple[_Waiting, list[str]]]:
        """Give devices to the jobs whose turn it is, in order; called with the lock held."""
        grants = []
        while (waiting := self._next_in_line()) is not None and (devices := self._fit(waiting.request)) is not None:
            for device in devices:
                self._holders[device] = waiting.job_id
            self._owners[waiting.job_id] = waiting.owner
            self._line.remove(waiting)
            grants.append((waiting, devices))
        return grants

    def _next_in_line(self) -> _Waiting | None:
        return next((waiting for waiting in self._line if not self._capped(waiting)), None)

    def _capped(self, waiting: _Waiting) -> bool:
        return waiting.cap is not None and self._held_by(waiting.owner) + self.size(waiting.request) > waiting.cap

    def _held_by(self, owner: int | None) -> int:
        return sum(1 for job_id in self._holders.values() if self._owners.get(job_id) == owner)

    def _fit(self, request: str) -> list[str] | None:
        free = [device for device in self.inventory if device not in self._holders]
        if request == "all":
            return free if len(free) == len(self.inventory) else None
        kind, _, value = request.partition(":")
        if kind == "count":
            count = int(value)
            return free[:count] if len(free) >= count else None
        wanted = value.split(",")
        return wanted if all(device in free for device in wanted) else None


def _notify(grants: list[tuple[_Waiting, list[str]]]) -> None:
    for waiting, devices in grants:
        try:
            waiting.granted(devices)
        except Exception:  # one broken hand-over must not strand the other grants' devices
            log.exception("handing GPUs %s to job %s failed", devices, waiting.job_id)

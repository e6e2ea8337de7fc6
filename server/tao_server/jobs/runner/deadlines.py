"""Time limits (`--time`) the daemon keeps itself, on a backend that does not (one Docker engine).

The daemon stops the job when its limit has passed since it got its devices (or started, without
GPUs), with the stop timeout as a cancel does, and records it `failed` with "stopped at its time
limit of H:MM:SS" and the task's exit code after the stop (143 for a task that exits on SIGTERM,
137 when it needed SIGKILL), as a Slurm job at its limit reads on the Slurm backend.

`Deadlines` is the clock: one thread sleeps until the earliest deadline, however many jobs have
one; a job that ends first is forgotten and never called.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tao_common.time_limits import shown
from tao_server.models import JobStatus

if TYPE_CHECKING:
    from tao_server.jobs.runner.ending import Ending
    from tao_server.jobs.runner.parts import RunnerParts

log = logging.getLogger(__name__)


class TimeLimits:
    def __init__(self, parts: RunnerParts, ending: Ending) -> None:
        self._parts = parts
        self._ending = ending

    def keep(self, job_id: str, limit: int | None, since: float) -> None:
        """Stop the job once `limit` seconds have passed since `since`, where the backend does not keep time limits itself."""
        if limit is not None and "time" not in self._parts.backend.places:
            self._parts.deadlines.watch(job_id, since + limit, lambda: self._time_up(job_id, limit))

    def _time_up(self, job_id: str, limit: int) -> None:
        """The job's time limit has passed: stop it as a cancel would, and let its end say why."""
        active = self._parts.active.get(job_id)
        if active is None or active.finished or active.cancel.is_set():
            return
        log.info("job %s: stopping it at its time limit of %s", job_id, shown(limit))
        active.stopped_at_limit = limit
        self._parts.events.append(job_id, "time_limit", {"limit": limit, "status": "stopping"})
        active.cancel.set()
        if active.run is not None:
            self._parts.control.submit(self._ending.stop, job_id, active.run)


def limit_end(status: JobStatus, error: str | None, stopped_at_limit: int | None) -> tuple[JobStatus, str | None]:
    """The end a job records: one stopped at its time limit ends `failed`, saying so, rather than `cancelled`."""
    if status == JobStatus.cancelled and stopped_at_limit is not None:
        return JobStatus.failed, f"stopped at its time limit of {shown(stopped_at_limit)}"
    return status, error


class Deadlines:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._due: list[tuple[float, int, str]] = []  # (when, tie-break, key), earliest first
        self._calls: dict[str, tuple[int, Callable[[], None]]] = {}  # key -> (its entry's tie-break, call)
        self._count = 0
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, key: str, at: float, call: Callable[[], None]) -> None:
        """Call `call` at time `at` (seconds since the epoch), in this object's thread, unless forgotten first."""
        with self._changed:
            self._count += 1
            self._calls[key] = (self._count, call)
            heapq.heappush(self._due, (at, self._count, key))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deadlines", daemon=True)
                self._thread.start()
            self._changed.notify()

    def forget(self, key: str) -> None:
        with self._changed:
            self._calls.pop(key, None)  # its heap entry is skipped when it comes up

    def _run(self) -> None:
        while True:
            with self._changed:
                call = self._next_due()
            try:
                call()
            except Exception:  # one failing call must not stop the others' deadlines
                log.exception("a deadline's call failed")

    def _next_due(self) -> Callable[[], None]:
        """Wait for the earliest live deadline and take it; called with the condition held."""
        while True:
            while self._due and self._calls.get(self._due[0][2], (None,))[0] != self._due[0][1]:
                heapq.heappop(self._due)  # forgotten, or replaced by a later watch of the same key
            if not self._due:
                self._changed.wait()
                continue
            at, _, key = self._due[0]
            left = at - self._clock()
            if left > 0:
                self._changed.wait(timeout=min(left, 60.0))
                continue
            heapq.heappop(self._due)
            return self._calls.pop(key)[1]

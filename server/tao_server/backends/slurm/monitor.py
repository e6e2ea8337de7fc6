"""One thread that knows the state of every Slurm job this daemon follows, from one batched poll.

Runs do not poll Slurm themselves: they `watch` their job here and wait on the monitor, which
ticks the StatePoller (state.py) for all of them at once, with its back-off, and wakes the
waiters when an answer changes. A submission or a cancel `hurry`s the next tick. While Slurm does
not answer, `outage` says why, and the waiters hear of it (BackendUnavailable); the jobs go on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tao_server.backends.slurm.state import JobState, StatePoller
from tao_server.errors import BackendUnavailable

_OUTAGE_RETRY = 2.0  # seconds between asks while Slurm does not answer


class JobMonitor:
    def __init__(self, poller: StatePoller) -> None:
        self._poller = poller
        self._changed = threading.Condition()
        self._watched: dict[str, int] = {}  # Slurm job id -> how many runs follow it
        self._states: dict[str, JobState] = {}
        self._lost: set[str] = set()
        self.outage: BackendUnavailable | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="slurm-monitor", daemon=True)
        self._thread.start()

    def watch(self, job_id: str) -> None:
        with self._changed:
            self._watched[job_id] = self._watched.get(job_id, 0) + 1
            self._poller.hurry()
            self._changed.notify_all()

    def unwatch(self, job_id: str) -> None:
        with self._changed:
            left = self._watched.get(job_id, 0) - 1
            if left > 0:
                self._watched[job_id] = left
                return
            self._watched.pop(job_id, None)
            self._states.pop(job_id, None)
            self._lost.discard(job_id)

    def hurry(self) -> None:
        with self._changed:
            self._poller.hurry()
            self._changed.notify_all()

    def recovered(self) -> None:
        """Slurm answered again (a ping): forget the outage and ask about every job at once."""
        with self._changed:
            self.outage = None
            self._poller.hurry()
            self._changed.notify_all()

    def state(self, job_id: str) -> JobState | None:
        with self._changed:
            return self._states.get(job_id)

    def lost(self, job_id: str) -> bool:
        with self._changed:
            return job_id in self._lost

    def wait(self, until: Callable[[], bool], timeout: float | None = None) -> bool:
        """Wait until `until()` holds (checked after each tick); BackendUnavailable while Slurm is out of reach."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not until():
                if self.outage is not None:
                    raise self.outage
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._changed.wait(timeout=min(left, 1.0) if left is not None else 1.0)
        return True

    def close(self) -> None:
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while True:
            with self._changed:
                while not self._closing and (not self._watched or self._poller.due_in() > 0):
                    self._changed.wait(timeout=self._poller.due_in() if self._watched else None)
                if self._closing:
                    return
                watched = list(self._watched)
            self._tick(watched)

    def _tick(self, watched: list[str]) -> None:
        try:
            tick = self._poller.tick(watched)
        except BackendUnavailable as exc:
            with self._changed:
                self.outage = exc
                self._changed.notify_all()
                self._changed.wait(timeout=_OUTAGE_RETRY)
            return
        with self._changed:
            self.outage = None
            self._states.update({job_id: state for job_id, state in tick.states.items() if job_id in self._watched})
            self._lost |= {job_id for job_id in tick.lost if job_id in self._watched}
            self._changed.notify_all()

"""Exclusive GPUs on a shared box: each running job holds its devices; the others wait in line.

First come, first served: a job that fits never overtakes an earlier one that does not fit yet,
so a job asking for many GPUs is never starved by a stream of small ones. The one exception is a
job whose owner is at their GPU cap (policy.py): it waits without holding up the line, or one
user's backlog would stop everyone else.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Waiting:
    job_id: str
    request: str
    owner: int | None
    cap: int | None


class GpuScheduler:
    def __init__(self, inventory: list[str]) -> None:
        self.inventory = list(inventory)
        self._holders: dict[str, str] = {}  # device -> job id
        self._owners: dict[str, int | None] = {}  # job id -> owner uid, for jobs holding devices
        self._line: list[_Waiting] = []  # oldest first
        self._changed = threading.Condition()

    def acquire(
        self, job_id: str, request: str, stop_when: Callable[[], bool], owner: int | None = None, cap: int | None = None
    ) -> list[str] | None:
        """Wait for the job's turn and devices; its device ids, or None when `stop_when()` turned true first."""
        waiting = _Waiting(job_id, request, owner, cap)
        with self._changed:
            self._line.append(waiting)
            try:
                while True:
                    if stop_when():
                        return None
                    if self._next_in_line() is waiting and (devices := self._fit(request)) is not None:
                        for device in devices:
                            self._holders[device] = job_id
                        self._owners[job_id] = owner
                        return devices
                    self._changed.wait(0.1)
            finally:
                self._line.remove(waiting)
                self._changed.notify_all()

    def hold(self, job_id: str, devices: list[str], owner: int | None = None) -> None:
        """Devices a job already has, as found after a daemon restart."""
        with self._changed:
            for device in devices:
                self._holders[device] = job_id
            self._owners[job_id] = owner

    def release(self, job_id: str) -> None:
        with self._changed:
            for device in [d for d, holder in self._holders.items() if holder == job_id]:
                del self._holders[device]
            self._owners.pop(job_id, None)
            self._changed.notify_all()

    def position(self, job_id: str) -> int | None:
        """1 for the next job to get GPUs; None for a job that is not waiting for GPUs."""
        with self._changed:
            for index, waiting in enumerate(self._line):
                if waiting.job_id == job_id:
                    return index + 1
            return None

    def holders(self) -> dict[str, str | None]:
        with self._changed:
            return {device: self._holders.get(device) for device in self.inventory}

    def size(self, request: str) -> int:
        """How many devices a request takes."""
        kind, _, value = request.partition(":")
        if kind == "count":
            return int(value)
        return len(value.split(",")) if kind == "ids" else len(self.inventory)

    def _next_in_line(self) -> _Waiting | None:
        for waiting in self._line:
            if waiting.cap is None or self._held_by(waiting.owner) + self.size(waiting.request) <= waiting.cap:
                return waiting
        return None

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

"""Exclusive GPUs on a shared box: each running job holds its devices; the others wait in line.

Strictly first come, first served: a job that fits never overtakes an earlier one that does
not fit yet, so a job asking for many GPUs is never starved by a stream of small ones.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable


class GpuScheduler:
    def __init__(self, inventory: list[str]) -> None:
        self.inventory = list(inventory)
        self._holders: dict[str, str] = {}  # device -> job id
        self._line: deque[str] = deque()  # job ids waiting, oldest first
        self._changed = threading.Condition()

    def acquire(self, job_id: str, request: str, stop_when: Callable[[], bool]) -> list[str] | None:
        """Wait for the job's turn and devices; its device ids, or None when `stop_when()` turned true first."""
        with self._changed:
            self._line.append(job_id)
            try:
                while True:
                    if stop_when():
                        return None
                    if self._line[0] == job_id and (devices := self._fit(request)) is not None:
                        for device in devices:
                            self._holders[device] = job_id
                        return devices
                    self._changed.wait(0.1)
            finally:
                self._line.remove(job_id)
                self._changed.notify_all()

    def hold(self, job_id: str, devices: list[str]) -> None:
        """Devices a job already has, as found after a daemon restart."""
        with self._changed:
            for device in devices:
                self._holders[device] = job_id

    def release(self, job_id: str) -> None:
        with self._changed:
            for device in [d for d, holder in self._holders.items() if holder == job_id]:
                del self._holders[device]
            self._changed.notify_all()

    def position(self, job_id: str) -> int | None:
        """1 for the next job to get GPUs; None for a job that is not waiting for GPUs."""
        with self._changed:
            try:
                return self._line.index(job_id) + 1
            except ValueError:
                return None

    def holders(self) -> dict[str, str | None]:
        with self._changed:
            return {device: self._holders.get(device) for device in self.inventory}

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

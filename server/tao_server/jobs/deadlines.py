"""Time limits the daemon keeps itself (a backend that does not, such as one Docker engine): a call when each is due.

One thread sleeps until the earliest deadline, however many jobs have one; a job that ends first
is forgotten and never called.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


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

"""Daemon threads taking calls in FIFO order: the runner's workers.

Daemon threads, unlike ThreadPoolExecutor's, do not hold the process open at exit while they
follow a job that runs for days: the job lives on and the next daemon adopts it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class WorkerPool:
    def __init__(self, size: int, name: str) -> None:
        self._calls: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(size)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._calls.put((fn, args))

    def shutdown(self) -> None:
        for _ in self._threads:
            self._calls.put(None)

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            fn, args = call
            try:
                fn(*args)
            except Exception:  # a worker must outlive one bad call
                log.exception("background call %s failed", getattr(fn, "__name__", fn))

"""The jobs the runner owns now: from their enqueueing to the end of their run, by id, under one lock."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from tao_server.backends import Run


@dataclass
class ActiveJob:
    cancel: threading.Event = field(default_factory=threading.Event)
    run: Run | None = None
    started: bool = False  # the run runs (out of its backend's queue): a terminal may attach, its ports may be reached
    finished: bool = False  # its end is recorded: its followers stop once they have read its whole log
    granted_at: float | None = None  # when it got its GPUs: its time limit counts from then
    stopped_at_limit: int | None = None  # the time limit (s) it was stopped at: its end is not a cancel
    retry_in: float | None = None  # it failed and runs again: in this many seconds, once its worker is done with it


class ActiveJobs:
    def __init__(self) -> None:
        self._jobs: dict[str, ActiveJob] = {}
        self._lock = threading.Lock()

    def track(self, job_id: str) -> ActiveJob:
        """The job's entry, made when it has none."""
        with self._lock:
            return self._jobs.setdefault(job_id, ActiveJob())

    def get(self, job_id: str) -> ActiveJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def pop(self, job_id: str) -> ActiveJob | None:
        with self._lock:
            return self._jobs.pop(job_id, None)

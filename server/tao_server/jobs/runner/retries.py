"""A failed task run again (`--retries N`, a step's `retries:`): the same job, its next attempt, after a back-off.

Only a task's own non-zero exit is retried: not a cancel, not a time limit, not a launch failure
(those end `cancelled`, `failed` with the limit's message, or `error`). The job keeps its id and
its one log file; where each attempt's output starts is kept (`Job.attempt_offsets`), so any
attempt's output can be read alone. Between attempts the job is `queued` with no run, worker or
GPU, its condition saying when it runs again; the jobs that wait for it wait for its last attempt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tao_server.jobs.runner.active import ActiveJob
from tao_server.jobs.runner.parts import RunnerParts
from tao_server.models import JobStatus


class Retries:
    def __init__(self, parts: RunnerParts) -> None:
        self._parts = parts
        self._lock = threading.Lock()
        self._due: dict[str, float] = {}  # job -> when it runs again (time.time())

    def again(self, job_id: str, exit_code: int | None, active: ActiveJob) -> bool:
        """Whether the job, whose task just failed, runs again; if so it is recorded `queued` for its next attempt."""
        parts = self._parts
        job = parts.store.find(job_id)
        if job is None or job.attempt > job.retries or active.cancel.is_set() or active.stopped_at_limit is not None or not exit_code:
            return False
        offsets = job.attempt_offsets or [0]
        backoff = parts.retry_backoff * 2 ** (job.attempt - 1)
        moved = parts.store.transition(
            job_id,
            [JobStatus.running, JobStatus.starting, JobStatus.pulling],
            status=JobStatus.queued,
            attempt=job.attempt + 1,
            attempt_offsets=[*offsets, parts.logs.size(job_id)],
            exit_code=None,
            container_id=None,
            gpus=[],
        )
        if not moved:
            return False
        parts.progress.ended(job_id)
        parts.events.append(
            job_id, "retry", {"attempt": job.attempt, "exit_code": exit_code, "next_attempt": job.attempt + 1, "in": backoff}
        )
        active.retry_in = backoff
        with self._lock:
            self._due[job_id] = time.time() + backoff
        return True

    def later(self, job_id: str, delay: float, requeue: Callable[[str], None]) -> None:
        """Hand the job back to `requeue` after `delay` seconds (its worker is done with its last attempt)."""

        def fire() -> None:
            with self._lock:
                self._due.pop(job_id, None)
            if not self._parts.closing:
                requeue(job_id)

        timer = threading.Timer(delay, fire)
        timer.daemon = True
        timer.start()

    def due(self, job_id: str) -> float | None:
        """When the job runs again (time.time()), while it waits out its back-off."""
        with self._lock:
            return self._due.get(job_id)

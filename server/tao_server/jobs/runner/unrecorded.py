"""Job ends the daemon could not write to its database (a full disk): kept in memory, written once it can.

The job has ended all the same: its followers are told, its GPUs go to the next in line, and
every view of the job shows the end. A thread tries the write again every few seconds, so the
table catches up by itself once space returns.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from tao_server.errors import StorageFull
from tao_server.jobs.store import JobStore
from tao_server.models import Job, JobStatus, utcnow

log = logging.getLogger(__name__)

RETRY_SECONDS = 2.0


@dataclass(frozen=True)
class _End:
    status: JobStatus
    exit_code: int | None
    error: str | None
    finished_at: datetime


class UnrecordedEnds:
    def __init__(self, store: JobStore, retry_seconds: float = RETRY_SECONDS) -> None:
        self._store = store
        self._retry_seconds = retry_seconds
        self._ends: dict[str, _End] = {}
        self._lock = threading.Lock()
        self._writer: threading.Thread | None = None

    def finish(self, job_id: str, status: JobStatus, exit_code: int | None, error: str | None) -> None:
        """Record the job's end; keep it here when the database cannot take it now."""
        end = _End(status, exit_code, error, utcnow())
        try:
            self._write(job_id, end)
        except StorageFull as exc:
            log.error("job %s ended %s, which is kept in memory until it can be written: %s", job_id, status.value, exc.message)
            with self._lock:
                self._ends[job_id] = end
                if self._writer is None:
                    self._writer = threading.Thread(target=self._catch_up, name="unrecorded-ends", daemon=True)
                    self._writer.start()

    def ended(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._ends

    def shown(self, job: Job) -> Job:
        """`job` as it really is: with its end when that end is only known here."""
        with self._lock:
            end = self._ends.get(job.id)
        if end is not None:  # a detached row: changing it changes no database
            job.status, job.exit_code, job.error, job.finished_at = end.status, end.exit_code, end.error, end.finished_at
        return job

    def _write(self, job_id: str, end: _End) -> None:
        self._store.update(job_id, status=end.status, exit_code=end.exit_code, error=end.error, finished_at=end.finished_at)

    def _catch_up(self) -> None:
        while True:
            threading.Event().wait(self._retry_seconds)
            with self._lock:
                pending = dict(self._ends)
            for job_id, end in pending.items():
                try:
                    self._write(job_id, end)
                except StorageFull:
                    break  # still full: try again later
                with self._lock:
                    self._ends.pop(job_id, None)
            with self._lock:
                if not self._ends:
                    self._writer = None
                    log.warning("every job end kept in memory is written to the database")
                    return

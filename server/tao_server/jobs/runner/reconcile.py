"""Adoption at start-up: the job table matched with the runs the backend still has from this daemon.

A run that ran on while the daemon was down is followed again from the byte its log has (or its
end recorded, when it ended meanwhile); a job asked to stop before the restart is stopped; a
`running` job whose run is gone ends in `error`; queued jobs, and those stopped before their run
started, start again from the top, once every resumed job holds its devices again. Runs no
active job claims are settled (leftovers.py). Fair share outlives the restart: the GPU-seconds
of jobs that ended lately are charged to their owners again.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from tao_server.errors import LAUNCHER_FAILURE
from tao_server.jobs.runner import leftovers
from tao_server.jobs.runner.deadlines import TimeLimits
from tao_server.jobs.runner.ending import Ending
from tao_server.jobs.runner.following import Following
from tao_server.jobs.runner.parts import RunnerParts
from tao_server.jobs.runner.waiting import Waiting
from tao_server.models import JobStatus

log = logging.getLogger(__name__)


class Reconcile:
    def __init__(self, parts: RunnerParts, queueing: Waiting, following: Following, ending: Ending, time_limits: TimeLimits) -> None:
        self._parts = parts
        self._queueing = queueing
        self._following = following
        self._ending = ending
        self._time_limits = time_limits

    def reconcile(self) -> list[leftovers.UnaccountedRun]:
        """Match the table with the runs the backend still has; the runs whose job the table does not know, left as they are."""
        parts = self._parts
        self._remember_usage()
        adopted = {found.job_id: found for found in parts.backend.adopt()}
        requeued = []
        for job in parts.store.active():
            found = adopted.pop(job.id, None)
            if job.cancel_requested:  # asked to stop before the restart: finish what was asked
                if found is not None:
                    found.run.release()
                self._ending.finish(job.id, JobStatus.cancelled, found.exit_code if found else None)
            elif found is not None and found.state != "prepared":  # it ran: follow it, or record how it ended
                log.info("resuming job %s (run %s)", job.id, found.run.run_id[:12])
                since = epoch(job.started_at)
                parts.gpus.hold(job.id, job.gpus, owner=job.owner_uid, since=since, time_limit=job.time_limit)
                # A run in its backend's queue is followed out of it: `queued` until it runs.
                running = job.status == JobStatus.running or "queue" not in parts.backend.places
                parts.store.update(job.id, status=JobStatus.running if running else JobStatus.queued, container_id=found.run.run_id)
                resumed = parts.active.track(job.id)
                resumed.run, resumed.started = found.run, running
                self._time_limits.keep(job.id, job.time_limit, since or time.time())
                (parts.gpu_workers if job.gpus else parts.workers).submit(self._following.resume, job.id, found.run)
            elif job.status == JobStatus.running:
                if found is not None:
                    found.run.release()
                self._ending.finish(job.id, JobStatus.error, LAUNCHER_FAILURE, "the job's container disappeared while the daemon was down")
            else:  # queued, or stopped before its run started: start again from the top
                if found is not None:
                    found.run.release()
                parts.store.update(job.id, status=JobStatus.queued, container_id=None)
                requeued.append(job)
        # Only now that every resumed job holds its devices again may queued ones be given any.
        for job in requeued:
            self._queueing.enqueue(job)
        return leftovers.settle(parts.store, list(adopted.values()))

    def _remember_usage(self) -> None:
        """Charge the GPU-seconds of jobs that ended before this start to their owners: fair share outlives a restart."""
        gpus = self._parts.gpus
        since = datetime.now(UTC) - timedelta(seconds=gpus.half_life * 10)  # older use weighs under 0.1%
        for owner, gpu_seconds, ended in self._parts.store.gpu_usage(since):
            gpus.charge(owner, gpu_seconds, epoch(ended) or time.time())


def epoch(when: datetime | None) -> float | None:
    """A time from the table (SQLite gives it back without its zone: UTC) as seconds since the epoch."""
    return when.replace(tzinfo=when.tzinfo or UTC).timestamp() if when is not None else None

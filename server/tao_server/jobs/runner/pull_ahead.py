"""Pull-ahead: GPUs never wait for a download, unless the line is `fifo`.

A GPU job's image is looked for while the job waits in line, and pulled if it must be (`pulling`,
then `queued` again, keeping its place); the scheduler gives devices only to a job whose image is
here. A pull that fails ends the job without it ever holding a device. Should the image be gone
by the time the devices come (removed meanwhile), the job gives them back and waits again in its
place (starting.py).
"""

from __future__ import annotations

import logging
import threading

from tao_server.errors import BackendUnavailable, LaunchFailure
from tao_server.jobs.runner.active import ActiveJob
from tao_server.jobs.runner.ending import Ending, failure
from tao_server.jobs.runner.image_pulls import ImagePulls
from tao_server.jobs.runner.parts import RunnerParts
from tao_server.models import Job, JobStatus

log = logging.getLogger(__name__)


class PullAhead:
    def __init__(self, parts: RunnerParts, pulls: ImagePulls, ending: Ending) -> None:
        self._parts = parts
        self._pulls = pulls
        self._ending = ending

    def fetch(self, job_id: str) -> None:
        """While the job waits in line: its image looked for, and pulled if it must be, so devices never wait for it."""
        parts = self._parts
        active = parts.active.get(job_id)
        job = parts.store.find(job_id)
        if active is None or active.cancel.is_set() or job is None or job.status != JobStatus.queued:
            return  # cancelled meanwhile: the service recorded that end
        try:
            missing = self._pulls.must_pull(job)
        except BackendUnavailable as exc:
            parts.health.lost(exc.message)
            if parts.health.wait_until_up(stop_when=active.cancel.is_set):
                parts.image_checks.submit(self.fetch, job_id)
            return
        except LaunchFailure as exc:
            self._end_in_line(job_id, JobStatus.error, exc.exit_code, exc.message)
            return
        if not missing:
            parts.gpus.ready(job_id)
            return
        # A pull may take minutes: it waits in a thread of its own, so that jobs whose images are here never wait behind it.
        threading.Thread(target=self._pull, args=(job_id, job, active), name=f"pull-ahead-{job_id}", daemon=True).start()

    def _pull(self, job_id: str, job: Job, active: ActiveJob) -> None:
        parts = self._parts
        try:
            pulled = self._pulls.pull(job_id, job, active, in_line=True)
        except BackendUnavailable as exc:  # the engine went away mid-pull: wait for it, then look again
            parts.health.lost(exc.message)
            parts.health.wait_until_up(stop_when=active.cancel.is_set)
            if active.cancel.is_set():
                self._end_in_line(job_id, JobStatus.cancelled, None)
            else:
                parts.store.transition(job_id, [JobStatus.pulling], status=JobStatus.queued)
                parts.image_checks.submit(self.fetch, job_id)
            return
        except Exception as exc:  # noqa: BLE001  (its end must be recorded, whatever broke the pull)
            exit_code, message = failure(job_id, exc)
            self._end_in_line(job_id, JobStatus.error, exit_code, message)
            return
        if not pulled:  # cancelled; its end is recorded
            self._end_in_line(job_id, None, None)
        elif not parts.gpus.ready(job_id):
            log.info("job %s: its image is here, but it left the line meanwhile", job_id)

    def _end_in_line(self, job_id: str, status: JobStatus | None, exit_code: int | None, error: str | None = None) -> None:
        """The job leaves the line without ever holding a device; its end is recorded (unless `status` is None: it was)."""
        self._parts.gpus.withdraw(job_id)
        if status is not None:
            self._ending.finish(job_id, status, exit_code, error)
        self._ending.done(job_id)

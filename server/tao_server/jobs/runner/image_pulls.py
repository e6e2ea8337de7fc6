"""A job's image pulled onto a backend that keeps images, as the job's pull policy says.

A job pulls when it starts (`starting`, then `pulling`, then `starting` again), or, in a GPU line
that pulls ahead, while it waits (`queued`, `pulling`, `queued` again: pull_ahead.py). Either
way the progress is recorded as the job's events, and a cancel breaks the pull off.
"""

from __future__ import annotations

from tao_server.access.caller import owner_of
from tao_server.errors import LaunchFailure
from tao_server.images.puller import ProgressRecorder
from tao_server.images.registry_logins import login_owner
from tao_server.jobs.runner.active import ActiveJob
from tao_server.jobs.runner.ending import Ending
from tao_server.jobs.runner.parts import RunnerParts
from tao_server.models import Job, JobStatus


class ImagePulls:
    def __init__(self, parts: RunnerParts, ending: Ending) -> None:
        self._parts = parts
        self._ending = ending

    def pull(self, job_id: str, job: Job, active: ActiveJob, in_line: bool = False) -> bool:
        """Pull the job's image, its progress recorded as job events; False, the job cancelled, when a cancel came first.

        `in_line`: the job waits in the GPU line meanwhile, and is `queued` again once its image is here.
        """
        parts = self._parts
        if parts.puller is None:
            return True  # the backend keeps no images: it fetches them itself when the job starts
        if not in_line:
            parts.store.update(job_id, status=JobStatus.pulling)
        elif not parts.store.transition(job_id, [JobStatus.queued], status=JobStatus.pulling):
            return False  # cancelled while queued: the service recorded that end
        record = ProgressRecorder(lambda data: parts.events.append(job_id, "pull", data), job.image)
        try:
            pulled = parts.puller.pull(job.image, login_owner(owner_of(job)), record, stop_when=active.cancel.is_set)
        except LaunchFailure:
            if not active.cancel.is_set():
                raise
            pulled = False  # the pull broke off after the job was cancelled: that is the end to record
        if not pulled or active.cancel.is_set():
            self._ending.finish(job_id, JobStatus.cancelled, None)
            return False
        parts.events.append(job_id, "pull", {"image": job.image, "layer": "", "status": "pulled"})
        if in_line:
            parts.store.transition(job_id, [JobStatus.pulling], status=JobStatus.queued)
        else:
            parts.store.update(job_id, status=JobStatus.starting)
        return True

    def must_pull(self, job: Job) -> bool:
        """Whether the job's image is to be pulled before it runs; LaunchFailure when it is missing and may not be."""
        if job.pull_policy == "always":
            return True
        images = self._parts.backend.images
        if images is None:
            return False  # a backend without images fetches them itself
        if images.summary(job.image) is not None:
            return False
        if job.pull_policy == "never":
            raise never_pulled(job)
        return True


def never_pulled(job: Job) -> LaunchFailure:
    return LaunchFailure(
        f"image {job.image} is not on the engine and the job's pull policy is never; "
        f"pull it first (`tao pull {job.task}`) or run with --pull missing"
    )

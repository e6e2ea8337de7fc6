"""A job's start, in its worker: its run prepared (the image pulled as its pull policy says), started, and handed on.

Nothing starts while the backend is out of reach: the job stays `queued` until it answers. An
outage in the middle is waited out; then the backend says how far the run got (nothing, made,
started), and this goes on from there. The run's mounts are pinned as late as possible, so a
source swapped for a symlink while the job waited does not count. Once started, the run is
followed to its end (following.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from tao_server.access.caller import owner_of
from tao_server.backends import LaunchSpec, Mount, Run, RunDependency
from tao_server.errors import BackendUnavailable, ImageMissing
from tao_server.jobs.events import record_image
from tao_server.jobs.runner.active import ActiveJob
from tao_server.jobs.runner.deadlines import TimeLimits
from tao_server.jobs.runner.ending import Ending, ImageGone
from tao_server.jobs.runner.following import Following
from tao_server.jobs.runner.handover import DependencyBroken
from tao_server.jobs.runner.image_pulls import ImagePulls, never_pulled
from tao_server.jobs.runner.outage import OutageRecovery
from tao_server.jobs.runner.parts import RunnerParts
from tao_server.models import Job, JobStatus

log = logging.getLogger(__name__)


class Starting:
    def __init__(
        self,
        parts: RunnerParts,
        pulls: ImagePulls,
        following: Following,
        ending: Ending,
        outage: OutageRecovery,
        time_limits: TimeLimits,
    ) -> None:
        self._parts = parts
        self._pulls = pulls
        self._following = following
        self._ending = ending
        self._outage = outage
        self._time_limits = time_limits
        # Where a job whose image went missing waits again (queueing.py sets it: the line comes before the start).
        self.requeue: Callable[[Job], None] = lambda job: None
        # The runs a backend that holds dependencies is to hold the job for (JobRunner sets it: handover.py).
        self.held_after: Callable[[str], tuple[RunDependency, ...]] = lambda job_id: ()

    def run(self, job_id: str, devices: list[str]) -> None:
        """A worker's call: start the job on `devices` (none without GPUs) and follow it to its end."""
        if self._parts.closing:
            return  # still queued in the table: the next daemon starts it
        self._ending.guarded(job_id, lambda job_id, active: self._start_and_follow(job_id, active, devices), self._back_in_line)

    def _start_and_follow(self, job_id: str, active: ActiveJob, devices: list[str]) -> None:
        parts = self._parts
        # Nothing new starts while the backend is out of reach: the job stays queued until it answers.
        if not parts.health.wait_until_up(stop_when=active.cancel.is_set):
            return  # cancelled while queued: the service recorded that end
        job = parts.store.get(job_id)
        job.gpus = devices
        if not parts.store.transition(job_id, [JobStatus.queued], status=JobStatus.starting, gpus=job.gpus):
            return  # cancelled while it waited; `done` frees the devices
        self._time_limits.keep(job_id, job.time_limit, active.granted_at or time.time())
        try:
            run = self._started(job_id, job, active)
        except DependencyBroken as broken:  # a dependency ended badly between the hand-over and the submission
            self._ending.finish(job_id, JobStatus.cancelled, None, broken.message)
            return
        if run is None:
            return
        if "queue" in parts.backend.places:  # it may wait in the backend's queue first: `queued` until it runs
            parts.store.update(job_id, status=JobStatus.queued, container_id=run.run_id)
        else:
            self._following.record_running(job_id, run, active)
        for listener in parts.submit_listeners:
            listener(job_id)
        if active.cancel.is_set():  # the cancel (or the time limit) arrived before the run was known
            parts.control.submit(self._ending.stop, job_id, run)
        parts.control.submit(record_image, parts.events, parts.backend.images, job_id, job.image)  # its output never waits for this
        self._following.follow_to_end(job_id, run, active)

    def _started(self, job_id: str, job: Job, active: ActiveJob) -> Run | None:
        """The job's run, started; None when the job was cancelled or failed first (its end recorded)."""
        parts = self._parts
        while True:
            if not parts.health.wait_until_up(stop_when=active.cancel.is_set):
                self._ending.finish(job_id, JobStatus.cancelled, None)
                return None
            try:
                run = self._prepare(job_id, job, active)
                if run is not None:
                    parts.progress.follow(job)  # from here on, what its status file gains is this run's
                    run.start()
                return run
            except BackendUnavailable as exc:
                found = self._outage.found_again(job_id, exc)
                if found is not None and found.state != "prepared":
                    active.run = found.run
                    return found.run  # it did start: follow it
                if found is not None:  # made but not started: make it again from the top
                    self._ending.release(job_id, found.run)
                active.run = None
            finally:
                parts.pins.release(job_id)  # a started run holds its own copy of the mounts

    def _prepare(self, job_id: str, job: Job, active: ActiveJob) -> Run | None:
        """The job's run, its image pulled as the job's pull policy says; None when cancelled meanwhile.

        A job whose image was pulled while it waited in line never pulls here: it holds GPUs now.
        """
        parts = self._parts
        pulled_ahead = parts.pulls_ahead and bool(job.gpus)
        if job.pull_policy == "always" and not pulled_ahead and not self._pulls.pull(job_id, job, active):
            return None
        # As late as possible: a source swapped for a symlink while the job waited must not count.
        mounts = parts.pins.prepare(job.id, job.mounts, confined=not owner_of(job).admin)
        spec = launch_spec(job, mounts, parts.backend.places, self.held_after(job_id))
        try:
            run = parts.backend.prepare(spec)
        except ImageMissing:
            if job.pull_policy == "never":
                raise never_pulled(job) from None
            if pulled_ahead:
                raise ImageGone from None
            if not self._pulls.pull(job_id, job, active):
                return None
            run = parts.backend.prepare(spec)
        active.run = run
        if active.cancel.is_set():
            run.release()
            self._ending.finish(job_id, JobStatus.cancelled, None)
            return None
        return run

    def _back_in_line(self, job_id: str, active: ActiveJob) -> None:
        """The job's image went between its pull and its GPUs: it gives them back and waits again, in its place."""
        parts = self._parts
        parts.gpus.release(job_id)
        parts.deadlines.forget(job_id)
        active.granted_at = None
        if not parts.store.transition(job_id, [JobStatus.starting], status=JobStatus.queued, gpus=[]):
            self._ending.done(job_id)  # cancelled meanwhile: that end is recorded
            return
        log.info("job %s: its image is gone; it gives its GPUs back and waits for the image in its place", job_id)
        self.requeue(parts.store.get(job_id))


def launch_spec(job: Job, mounts: list[dict[str, Any]], places: frozenset[str], after: tuple[RunDependency, ...] = ()) -> LaunchSpec:
    """What the backend is asked to run: the job's recorded request, its mounts as pinned, its devices, the runs it waits for."""
    kind, _, count = job.gpu_request.partition(":")
    return LaunchSpec(
        job_id=job.id,
        image=job.image,
        command=job.command,
        mounts=[Mount(m["source"], m["destination"], m["read_only"]) for m in mounts],
        envs=job.envs,
        options=job.docker_options,
        devices=job.gpus,
        owner_uid=job.owner_uid,
        owner_gid=job.owner_gid,
        gpu_count=int(count) if "gpus" in places and kind == "count" else 0,
        nodes=job.nodes or 1,
        time_limit=job.time_limit,
        interactive=job.interactive,
        after=after,
    )

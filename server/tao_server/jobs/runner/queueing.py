"""A submitted job's way to a worker: at once, or through the GPU line.

A job without GPUs (or on a backend that allocates them, Slurm) goes to the workers, at most
max_running_jobs at once; more wait `queued`. A job that needs GPUs waits in the scheduler's
line (jobs/gpus/) without a worker, in `queued`, until its devices are free; where the line pulls
ahead, its image is fetched meanwhile (pull_ahead.py) and only then may it be given devices.
Devices handed over start it on a worker of the GPU pool (starting.py).

This is where a job that waits for something else would wait too (other jobs, a retry's
back-off): `enqueue` is the one door to the workers.
"""

from __future__ import annotations

import time

from tao_server.errors import LAUNCHER_FAILURE
from tao_server.jobs.runner.ending import Ending
from tao_server.jobs.runner.parts import RunnerParts
from tao_server.jobs.runner.pull_ahead import PullAhead
from tao_server.jobs.runner.starting import Starting
from tao_server.models import Job, JobStatus


class Queueing:
    def __init__(self, parts: RunnerParts, starting: Starting, pull_ahead: PullAhead, ending: Ending) -> None:
        self._parts = parts
        self._starting = starting
        self._pull_ahead = pull_ahead
        self._ending = ending
        starting.requeue = self.queue_for_gpus

    def enqueue(self, job: Job) -> None:
        """Take a recorded `queued` job: to a worker now, or to its place in the GPU line."""
        parts = self._parts
        parts.active.track(job.id)
        if not job.gpu_request or "gpus" in parts.backend.places:  # no GPUs, or the backend allocates them
            parts.workers.submit(self._starting.run, job.id, [])
            return
        if not parts.gpus.can_ever_fit(job.gpu_request):
            have = ", ".join(parts.gpus.inventory) or "none"
            self._ending.finish(
                job.id,
                JobStatus.error,
                LAUNCHER_FAILURE,
                f"the job asks for GPUs ({job.gpu_request}) this host does not have (its GPUs: {have})",
            )
            return
        self.queue_for_gpus(job)
        if parts.store.get(job.id).status.terminal:  # cancelled between its insert and its place in line
            self._ending.forget(job.id)

    def queue_for_gpus(self, job: Job) -> None:
        """The job waits in `queued`, with its place in the GPU line but no worker, until its devices are free.

        Where the line pulls ahead, its image is fetched meanwhile, and only then may it be given devices.
        """
        parts = self._parts
        parts.gpus.request(
            job.id,
            job.gpu_request,
            lambda devices: self._hand_over(job.id, devices),
            job.owner_uid,
            job.gpu_cap,
            shares=job.gpu_shares or 1.0,
            time_limit=job.time_limit,
            ready=not parts.pulls_ahead,
            seq=job.seq,
        )
        if parts.pulls_ahead:
            parts.image_checks.submit(self._pull_ahead.fetch, job.id)

    def _hand_over(self, job_id: str, devices: list[str]) -> None:
        """The line gave the job its devices: its time limit counts from now, and a GPU worker starts it."""
        parts = self._parts
        if parts.closing:
            return
        active = parts.active.get(job_id)
        if active is not None:
            active.granted_at = time.time()
        parts.events.append(job_id, "gpus", {"devices": devices})
        parts.gpu_workers.submit(self._starting.run, job_id, devices)

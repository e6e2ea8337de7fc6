"""JobRunner: what the job service, the sessions and the daemon call; it builds the phases and hands each job on.

The runner owns each job from `queued` to its end, on whichever backend runs it, and speaks the
backend contract (backends/base.py) only. Its phases, each a module of this package, follow a job's
life: queueing (to a worker, or the GPU line), pull-ahead, starting, following (the run to its
end), ending; beside them the time limits the daemon keeps, outage recovery, and the reconcile
that adopts runs after a restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

from tao_server.access.mount_pins import MountPins
from tao_server.backends import AttachableRun, Backend
from tao_server.images.puller import ImagePuller
from tao_server.jobs.dependencies import DependencyStore
from tao_server.jobs.events import EventLog
from tao_server.jobs.gpus.gpu_line import LineRule
from tao_server.jobs.gpus.scheduler import GpuScheduler
from tao_server.jobs.log_files import LogStore
from tao_server.jobs.progress.tracker import NO_PROGRESS, Progress
from tao_server.jobs.runner import leftovers
from tao_server.jobs.runner.active import ActiveJobs
from tao_server.jobs.runner.backend_health import BackendHealth
from tao_server.jobs.runner.deadlines import Deadlines, TimeLimits
from tao_server.jobs.runner.ending import Ending
from tao_server.jobs.runner.following import Following
from tao_server.jobs.runner.image_pulls import ImagePulls
from tao_server.jobs.runner.observer import JobObserver, NoObserver
from tao_server.jobs.runner.outage import OutageRecovery
from tao_server.jobs.runner.parts import RunnerParts
from tao_server.jobs.runner.pull_ahead import PullAhead
from tao_server.jobs.runner.queueing import Queueing
from tao_server.jobs.runner.reconcile import Reconcile
from tao_server.jobs.runner.starting import Starting
from tao_server.jobs.runner.unrecorded import UnrecordedEnds
from tao_server.jobs.runner.waiting import Waiting
from tao_server.jobs.runner.worker_pool import WorkerPool
from tao_server.jobs.store import JobStore
from tao_server.models import Job, JobStatus

STOP_WORKERS = 4  # threads that stop and release runs, apart from the workers
IMAGE_CHECKERS = 4  # threads that look for the images of jobs waiting in the GPU line


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        backend: Backend,
        logs: LogStore,
        events: EventLog,
        puller: ImagePuller | None,
        gpus: GpuScheduler,
        max_running: int,
        stop_timeout: float,
        pins: MountPins | None = None,
        observer: JobObserver | None = None,
        progress: Progress = NO_PROGRESS,
        dependencies: DependencyStore | None = None,
        retry_backoff: float = 5.0,
    ) -> None:
        self.dependencies = dependencies or DependencyStore(store)
        self.health = BackendHealth(backend.ping)
        self.ends = UnrecordedEnds(store)
        self._parts = parts = RunnerParts(
            store=store,
            backend=backend,
            logs=logs,
            events=events,
            puller=puller,
            gpus=gpus,
            pins=pins or MountPins(None),
            observer=observer or NoObserver(),
            progress=progress,
            stop_timeout=stop_timeout,
            health=self.health,
            ends=self.ends,
            active=ActiveJobs(),
            deadlines=Deadlines(),
            workers=WorkerPool(max_running, "job"),
            gpu_workers=WorkerPool(len(gpus.inventory), "gpu-job"),
            control=WorkerPool(STOP_WORKERS, "job-stop"),
            image_checks=WorkerPool(IMAGE_CHECKERS, "image-check"),
            pulls_ahead=puller is not None and backend.images is not None and gpus.rule != LineRule.fifo,
            retry_backoff=retry_backoff,
        )
        outage = OutageRecovery(parts)
        self._ending = ending = Ending(parts, outage)
        time_limits = TimeLimits(parts, ending)
        pulls = ImagePulls(parts, ending)
        following = Following(parts, ending, outage)
        starting = Starting(parts, pulls, following, ending, outage, time_limits)
        queueing = Queueing(parts, starting, PullAhead(parts, pulls, ending), ending)
        self._waiting = waiting = Waiting(parts, queueing, ending, self.dependencies)
        ending.requeue = self._requeue
        self._reconcile = Reconcile(parts, waiting, following, ending, time_limits)
        self.unaccounted: list[leftovers.UnaccountedRun] = []  # found by the last reconcile

    def enqueue(self, job: Job) -> None:
        """Take a job just recorded `queued` (submitted, run again, or requeued at start-up): it waits for its
        dependencies, if it has any, then goes to a worker or its place in the GPU line."""
        self._waiting.enqueue(job)

    def _requeue(self, job_id: str) -> None:
        """A failed job's back-off is over: its next attempt goes the way a new job goes (unless it was cancelled meanwhile)."""
        job = self._parts.store.find(job_id)
        if job is not None and job.status == JobStatus.queued:
            self._waiting.enqueue(job)

    def cancel(self, job_id: str) -> None:
        """Ask a pulling, starting or running job to stop; its worker records the end."""
        self._ending.cancel(job_id)

    def forget(self, job_id: str) -> None:
        """A queued job was cancelled before it started: free its place in line, wake its followers."""
        self._ending.forget(job_id)

    def reconcile(self) -> None:
        """Match the table with the runs the backend still has from this daemon, after a restart."""
        self.unaccounted = self._reconcile.reconcile()

    def shutdown(self) -> None:
        """Stop taking work. Runs go on; the next daemon adopts them, and starts the queued jobs."""
        parts = self._parts
        parts.closing = True
        for pool in (parts.workers, parts.gpu_workers, parts.image_checks, parts.control):
            pool.shutdown()

    def on_end(self, listener: Callable[[str], None]) -> None:
        """Call `listener(job_id)` once a job has ended (maybe more than once), from the thread that saw it end."""
        self._parts.end_listeners.append(listener)

    def condition(self, job_id: str) -> str | None:
        """Why an active job does not advance: "backend unreachable since ...", or its backend's word ("pending in Slurm: Resources")."""
        waiting = self._waiting.condition(job_id)
        if waiting is not None:
            return waiting
        due = self._ending.retry_due(job_id)
        if due is not None:
            return f"failed; runs again in {max(0, round(due - time.time()))} s"
        active = self._parts.active.get(job_id)
        if active is None or active.finished:
            return None
        described = self.health.describe()
        if described is not None:
            return f"backend {described}"
        return active.run.condition() if active.run is not None else None

    def started_run(self, job_id: str) -> AttachableRun | None:
        """The job's run once it has started, on a backend that attaches; None before, after, or elsewhere."""
        active = self._parts.active.get(job_id)
        if not self._parts.backend.attaches or active is None or active.finished or not active.started:
            return None
        return cast(AttachableRun, active.run)

    def is_finished(self, job_id: str) -> bool:
        """Whether the job's end is recorded: its followers may stop once they have read its whole log."""
        active = self._parts.active.get(job_id)
        if active is not None:
            return active.finished
        job = self._parts.store.find(job_id)
        return job is None or job.status.terminal or self.ends.ended(job_id)

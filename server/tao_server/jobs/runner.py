"""The job runner: owns each job from `queued` to its end, on whichever backend runs it.

One worker thread per job prepares its run (pulling the image when the backend keeps images),
starts it, copies its output into the job's log file, waits for the exit and releases the run.
Jobs wait in `queued` while all workers are busy; jobs that need GPUs wait in the scheduler's
line without a worker. The runner speaks the backend contract (backends/base.py) only.

GPUs never wait for a download, unless the line is `fifo` (as before): a GPU job's image is pulled
while it waits in line (`pulling`, then `queued` again), and the scheduler gives devices only to a
job whose image is here. Should the image be gone by the time the devices come (removed meanwhile),
the job gives them back and waits again in its place. A pull that fails ends the job without it
ever holding a device.

Time limits (`--time`) on a backend that does not keep them (Docker): the daemon stops the job
when its limit has passed since it got its devices (or started, without GPUs), with the stop
timeout as a cancel does, and records it `failed` with "stopped at its time limit of H:MM:SS" and
the task's exit code after the stop (143 for a task that exits on SIGTERM, 137 when it needed
SIGKILL), as a Slurm job at its limit reads on the Slurm backend.

A backend that queues jobs itself (Slurm) may hold a started run: the job reads `queued`, with the
backend's reason as its condition, until `Run.wait_running` says it runs. A run that did not end
by itself (cancelled on the cluster, a failed node, a container removed behind the daemon's back)
ends with the status and reason its backend gives (RunExit.interrupted), never `succeeded`; one
whose task may outlive that end (a failed node) keeps its output copied into the log, in a thread
of its own, until the task is gone, and is released only then.

A backend out of reach (BackendUnavailable) ends no job: the worker reports it (health.py),
waits until the backend answers, finds the job's run again and goes on from the byte its log
has. Meanwhile nothing new starts, the job keeps its status and GPUs, and a cancel asked for is
carried out once the backend answers.

Its observer (observer.py) hears of each start and end once it is recorded: notifications.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from tao_server.access.caller import owner_of
from tao_server.access.mount_pins import MountPins
from tao_server.backends import AdoptedRun, AttachableRun, Backend, LaunchSpec, Mount, OutputStream, Run, RunExit
from tao_server.errors import LAUNCHER_FAILURE, BackendError, BackendUnavailable, ImageMissing, LaunchFailure, StorageFull, TaoError
from tao_server.images.credentials import login_owner
from tao_server.images.puller import ImagePuller, ProgressRecorder
from tao_server.jobs import leftovers
from tao_server.jobs.deadlines import Deadlines
from tao_server.jobs.events import EventLog, record_image
from tao_server.jobs.gpu_line import LineRule
from tao_server.jobs.health import BackendHealth
from tao_server.jobs.logs import LogStore
from tao_server.jobs.observer import JobObserver, NoObserver
from tao_server.jobs.progress import NO_PROGRESS, Progress
from tao_server.jobs.scheduler import GpuScheduler
from tao_server.jobs.store import JobStore
from tao_server.jobs.unrecorded import UnrecordedEnds
from tao_server.models import Job, JobStatus, utcnow
from tao_server.time_limits import shown

log = logging.getLogger(__name__)


@dataclass
class _ActiveJob:
    cancel: threading.Event = field(default_factory=threading.Event)
    run: Run | None = None
    started: bool = False  # the run runs (out of its backend's queue): a terminal may attach, its ports may be reached
    finished: bool = False
    granted_at: float | None = None  # when it got its GPUs: its time limit counts from then
    stopped_at_limit: int | None = None  # the time limit (s) it was stopped at: its end is not a cancel


class _ImageGone(Exception):
    """The job's image, pulled while it waited, is not there now that it has its GPUs."""


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
    ) -> None:
        self._gpus = gpus
        self._observer: JobObserver = observer or NoObserver()
        self._progress = progress  # follows a run's status file from just before it starts to its end
        self._pins = pins or MountPins(None)
        self._store = store
        self.ends = UnrecordedEnds(store)
        self._backend = backend
        self._logs = logs
        self._events = events
        self._puller = puller
        self._stop_timeout = stop_timeout
        self.health = BackendHealth(backend.ping)
        self._workers = _WorkerPool(max_running, "job")
        # Jobs holding GPUs run apart: each holds at least one device, so this pool never makes one wait.
        self._gpu_workers = _WorkerPool(len(gpus.inventory), "gpu-job")
        self._closing = False
        # Stops run apart from the workers, so a cancel is never stuck behind queued jobs.
        self._control = _WorkerPool(4, "job-stop")
        self._active: dict[str, _ActiveJob] = {}
        self._lock = threading.Lock()
        # Images are pulled while GPU jobs wait in line, never while they hold devices (but in a fifo line, as before).
        self._pulls_ahead = puller is not None and backend.images is not None and gpus.rule != LineRule.fifo
        self._image_checks = _WorkerPool(4, "image-check")
        self._deadlines = Deadlines()
        self.unaccounted: list[leftovers.UnaccountedRun] = []  # found by the last reconcile
        self._end_listeners: list[Callable[[str], None]] = []

    # -- what the job service calls ---------------------------------------------------------

    def enqueue(self, job: Job) -> None:
        self._track(job.id)
        if not job.gpu_request or "gpus" in self._backend.places:  # no GPUs, or the backend allocates them
            self._workers.submit(self._run, job.id, [])
            return
        if not self._gpus.can_ever_fit(job.gpu_request):
            have = ", ".join(self._gpus.inventory) or "none"
            self._finish(
                job.id,
                JobStatus.error,
                LAUNCHER_FAILURE,
                f"the job asks for GPUs ({job.gpu_request}) this host does not have (its GPUs: {have})",
            )
            return
        self._queue_for_gpus(job)
        if self._store.get(job.id).status.terminal:  # cancelled between its insert and its place in line
            self.forget(job.id)

    def _queue_for_gpus(self, job: Job) -> None:
        """The job waits in `queued`, with its place in the GPU line but no worker, until its devices are free.

        Where the line pulls ahead, its image is fetched meanwhile, and only then may it be given devices.
        """
        self._gpus.request(
            job.id,
            job.gpu_request,
            lambda devices: self._hand_over(job.id, devices),
            job.owner_uid,
            job.gpu_cap,
            shares=job.gpu_shares or 1.0,
            time_limit=job.time_limit,
            ready=not self._pulls_ahead,
            seq=job.seq,
        )
        if self._pulls_ahead:
            self._image_checks.submit(self._fetch_ahead, job.id)

    def cancel(self, job_id: str) -> None:
        """Ask a pulling, starting or running job to stop; its worker records the end."""
        with self._lock:
            active = self._active.get(job_id)
        if active is None:
            return
        active.cancel.set()
        if active.run is not None:
            self._control.submit(self._stop, job_id, active.run)

    def forget(self, job_id: str) -> None:
        """A queued job was cancelled before it started: free its place in line, wake its followers."""
        if not self._gpus.withdraw(job_id):
            self._gpus.release(job_id)  # granted just now: the worker it was handed to will find it cancelled
        active = self._wake_followers(job_id, untrack=True)
        if active is not None:
            active.cancel.set()
        self._progress.ended(job_id)
        self._observe(job_id, self._observer.job_ended)

    def condition(self, job_id: str) -> str | None:
        """Why an active job does not advance: "backend unreachable since ...", or its backend's word ("pending in Slurm: Resources")."""
        with self._lock:
            active = self._active.get(job_id)
        if active is None or active.finished:
            return None
        described = self.health.describe()
        if described is not None:
            return f"backend {described}"
        return active.run.condition() if active.run is not None else None

    def started_run(self, job_id: str) -> AttachableRun | None:
        """The job's run once it has started, on a backend that attaches; None before, after, or elsewhere."""
        with self._lock:
            active = self._active.get(job_id)
        if not self._backend.attaches or active is None or active.finished or not active.started:
            return None
        return cast(AttachableRun, active.run)

    def is_finished(self, job_id: str) -> bool:
        """Whether the job's end is recorded: its followers may stop once they have read its whole log."""
        with self._lock:
            active = self._active.get(job_id)
        if active is not None:
            return active.finished
        job = self._store.find(job_id)
        return job is None or job.status.terminal or self.ends.ended(job_id)

    def on_end(self, listener: Callable[[str], None]) -> None:
        """Call `listener(job_id)` once a job has ended (maybe more than once), from the thread that saw it end."""
        self._end_listeners.append(listener)

    def shutdown(self) -> None:
        """Stop taking work. Runs go on; the next daemon adopts them, and starts the queued jobs."""
        self._closing = True
        self._workers.shutdown()
        self._gpu_workers.shutdown()
        self._image_checks.shutdown()
        self._control.shutdown()

    # -- start-up reconciliation ----------------------------------------------------------------

    def reconcile(self) -> None:
        """Match the table with the runs the backend still has from this daemon, after a restart."""
        self._remember_usage()
        adopted = {found.job_id: found for found in self._backend.adopt()}
        requeued = []
        for job in self._store.active():
            found = adopted.pop(job.id, None)
            if job.cancel_requested:  # asked to stop before the restart: finish what was asked
                if found is not None:
                    found.run.release()
                self._finish(job.id, JobStatus.cancelled, found.exit_code if found else None)
            elif found is not None and found.state != "prepared":  # it ran: follow it, or record how it ended
                log.info("resuming job %s (run %s)", job.id, found.run.run_id[:12])
                since = _epoch(job.started_at)
                self._gpus.hold(job.id, job.gpus, owner=job.owner_uid, since=since, time_limit=job.time_limit)
                # A run in its backend's queue is followed out of it: `queued` until it runs.
                running = job.status == JobStatus.running or "queue" not in self._backend.places
                self._store.update(job.id, status=JobStatus.running if running else JobStatus.queued, container_id=found.run.run_id)
                resumed = self._track(job.id)
                resumed.run, resumed.started = found.run, running
                self._keep_time(job.id, job.time_limit, since or time.time())
                (self._gpu_workers if job.gpus else self._workers).submit(self._resume, job.id, found.run)
            elif job.status == JobStatus.running:
                if found is not None:
                    found.run.release()
                self._finish(job.id, JobStatus.error, LAUNCHER_FAILURE, "the job's container disappeared while the daemon was down")
            else:  # queued, or stopped before its run started: start again from the top
                if found is not None:
                    found.run.release()
                self._store.update(job.id, status=JobStatus.queued, container_id=None)
                requeued.append(job)
        # Only now that every resumed job holds its devices again may queued ones be given any.
        for job in requeued:
            self.enqueue(job)
        self.unaccounted = leftovers.settle(self._store, list(adopted.values()))

    def _remember_usage(self) -> None:
        """Charge the GPU-seconds of jobs that ended before this start to their owners: fair share outlives a restart."""
        since = datetime.now(UTC) - timedelta(seconds=self._gpus.half_life * 10)  # older use weighs under 0.1%
        for owner, gpu_seconds, ended in self._store.gpu_usage(since):
            self._gpus.charge(owner, gpu_seconds, _epoch(ended) or time.time())

    # -- waiting in line for GPUs -----------------------------------------------------------------

    def _fetch_ahead(self, job_id: str) -> None:
        """While the job waits in line: its image looked for, and pulled if it must be, so devices never wait for it."""
        with self._lock:
            active = self._active.get(job_id)
        job = self._store.find(job_id)
        if active is None or active.cancel.is_set() or job is None or job.status != JobStatus.queued:
            return  # cancelled meanwhile: the service recorded that end
        try:
            missing = self._must_pull(job)
        except BackendUnavailable as exc:
            self.health.lost(exc.message)
            if self.health.wait_until_up(stop_when=active.cancel.is_set):
                self._image_checks.submit(self._fetch_ahead, job_id)
            return
        except LaunchFailure as exc:
            self._end_in_line(job_id, JobStatus.error, exc.exit_code, exc.message)
            return
        if not missing:
            self._gpus.ready(job_id)
            return
        # A pull may take minutes: it waits in a thread of its own, so that jobs whose images are here never wait behind it.
        threading.Thread(target=self._pull_ahead, args=(job_id, job, active), name=f"pull-ahead-{job_id}", daemon=True).start()

    def _must_pull(self, job: Job) -> bool:
        """Whether the job's image is to be pulled before it runs; LaunchFailure when it is missing and may not be."""
        if job.pull_policy == "always":
            return True
        assert self._backend.images is not None  # only a backend with images pulls ahead
        if self._backend.images.summary(job.image) is not None:
            return False
        if job.pull_policy == "never":
            raise _never_pulled(job)
        return True

    def _pull_ahead(self, job_id: str, job: Job, active: _ActiveJob) -> None:
        try:
            pulled = self._pull(job_id, job, active, in_line=True)
        except BackendUnavailable as exc:  # the engine went away mid-pull: wait for it, then look again
            self.health.lost(exc.message)
            self.health.wait_until_up(stop_when=active.cancel.is_set)
            if active.cancel.is_set():
                self._end_in_line(job_id, JobStatus.cancelled, None)
            else:
                self._store.transition(job_id, [JobStatus.pulling], status=JobStatus.queued)
                self._image_checks.submit(self._fetch_ahead, job_id)
            return
        except Exception as exc:  # noqa: BLE001  (its end must be recorded, whatever broke the pull)
            exit_code, message = _failure(job_id, exc)
            self._end_in_line(job_id, JobStatus.error, exit_code, message)
            return
        if not pulled:  # cancelled; its end is recorded
            self._end_in_line(job_id, None, None)
        elif not self._gpus.ready(job_id):
            log.info("job %s: its image is here, but it left the line meanwhile", job_id)

    def _end_in_line(self, job_id: str, status: JobStatus | None, exit_code: int | None, error: str | None = None) -> None:
        """The job leaves the line without ever holding a device; its end is recorded (unless `status` is None: it was)."""
        self._gpus.withdraw(job_id)
        if status is not None:
            self._finish(job_id, status, exit_code, error)
        self._done(job_id)

    # -- worker side ----------------------------------------------------------------------------

    def _track(self, job_id: str) -> _ActiveJob:
        with self._lock:
            return self._active.setdefault(job_id, _ActiveJob())

    def _hand_over(self, job_id: str, devices: list[str]) -> None:
        if self._closing:
            return
        with self._lock:
            active = self._active.get(job_id)
        if active is not None:
            active.granted_at = time.time()
        self._events.append(job_id, "gpus", {"devices": devices})
        self._gpu_workers.submit(self._run, job_id, devices)

    def _run(self, job_id: str, devices: list[str]) -> None:
        if self._closing:
            return  # still queued in the table: the next daemon starts it
        self._guarded(job_id, lambda job_id, active: self._start_and_follow(job_id, active, devices))

    def _resume(self, job_id: str, run: Run) -> None:
        self._guarded(job_id, lambda job_id, active: self._follow_to_end(job_id, run, active))

    def _guarded(self, job_id: str, body: Callable[[str, _ActiveJob], None]) -> None:
        """Run `body` for the job; whatever goes wrong, record an end and leave no run behind."""
        active = self._track(job_id)
        back_in_line = False
        try:
            body(job_id, active)
        except _ImageGone:
            back_in_line = True
        except Exception as exc:  # noqa: BLE001  (the worker must record every end, or the job would hang in `running`)
            exit_code, message = _failure(job_id, exc)
            self._abandon(active)
            self._finish(job_id, JobStatus.error, exit_code, message)
        finally:
            if back_in_line:
                self._back_in_line(job_id, active)
            else:
                self._done(job_id)

    def _back_in_line(self, job_id: str, active: _ActiveJob) -> None:
        """The job's image went between its pull and its GPUs: it gives them back and waits again, in its place."""
        self._gpus.release(job_id)
        self._deadlines.forget(job_id)
        active.granted_at = None
        if not self._store.transition(job_id, [JobStatus.starting], status=JobStatus.queued, gpus=[]):
            self._done(job_id)  # cancelled meanwhile: that end is recorded
            return
        log.info("job %s: its image is gone; it gives its GPUs back and waits for the image in its place", job_id)
        self._queue_for_gpus(self._store.get(job_id))

    def _start_and_follow(self, job_id: str, active: _ActiveJob, devices: list[str]) -> None:
        # Nothing new starts while the backend is out of reach: the job stays queued until it answers.
        if not self.health.wait_until_up(stop_when=active.cancel.is_set):
            return  # cancelled while queued: the service recorded that end
        job = self._store.get(job_id)
        job.gpus = devices
        if not self._store.transition(job_id, [JobStatus.queued], status=JobStatus.starting, gpus=job.gpus):
            return  # cancelled while it waited; _done frees the devices
        self._keep_time(job_id, job.time_limit, active.granted_at or time.time())
        run = self._started(job_id, job, active)
        if run is None:
            return
        if "queue" in self._backend.places:  # it may wait in the backend's queue first: `queued` until it runs
            self._store.update(job_id, status=JobStatus.queued, container_id=run.run_id)
        else:
            self._record_running(job_id, run, active)
        if active.cancel.is_set():  # the cancel (or the time limit) arrived before the run was known
            self._control.submit(self._stop, job_id, run)
        self._control.submit(record_image, self._events, self._backend.images, job_id, job.image)  # its output never waits for this
        self._follow_to_end(job_id, run, active)

    def _started(self, job_id: str, job: Job, active: _ActiveJob) -> Run | None:
        """The job's run, started; None when the job was cancelled or failed first (its end recorded).

        Nothing starts while the backend is out of reach. An outage in the middle is waited out;
        then the backend says how far the run got (nothing, made, started), and this goes on from there.
        """
        while True:
            if not self.health.wait_until_up(stop_when=active.cancel.is_set):
                self._finish(job_id, JobStatus.cancelled, None)
                return None
            try:
                run = self._prepare(job_id, job, active)
                if run is not None:
                    self._progress.follow(job)  # from here on, what its status file gains is this run's
                    run.start()
                return run
            except BackendUnavailable as exc:
                found = self._found_again(job_id, exc)
                if found is not None and found.state != "prepared":
                    active.run = found.run
                    return found.run  # it did start: follow it
                if found is not None:  # made but not started: make it again from the top
                    self._release(job_id, found.run)
                active.run = None
            finally:
                self._pins.release(job_id)  # a started run holds its own copy of the mounts

    def _found_again(self, job_id: str, outage: BackendUnavailable) -> AdoptedRun | None:
        """Once the backend answers again after `outage`: the job's run as it has it, or None."""
        while True:
            self.health.lost(outage.message)
            self.health.wait_until_up()
            try:
                return self._backend.find(job_id)
            except BackendUnavailable as again:
                outage = again

    def _prepare(self, job_id: str, job: Job, active: _ActiveJob) -> Run | None:
        """The job's run, its image pulled as the job's pull policy says; None when cancelled meanwhile.

        A job whose image was pulled while it waited in line never pulls here: it holds GPUs now.
        """
        pulled_ahead = self._pulls_ahead and bool(job.gpus)
        if job.pull_policy == "always" and not pulled_ahead and not self._pull(job_id, job, active):
            return None
        # As late as possible: a source swapped for a symlink while the job waited must not count.
        spec = _launch_spec(job, self._pins.prepare(job.id, job.mounts, confined=not owner_of(job).admin), self._backend.places)
        try:
            run = self._backend.prepare(spec)
        except ImageMissing:
            if job.pull_policy == "never":
                raise _never_pulled(job) from None
            if pulled_ahead:
                raise _ImageGone from None
            if not self._pull(job_id, job, active):
                return None
            run = self._backend.prepare(spec)
        active.run = run
        if active.cancel.is_set():
            run.release()
            self._finish(job_id, JobStatus.cancelled, None)
            return None
        return run

    def _pull(self, job_id: str, job: Job, active: _ActiveJob, in_line: bool = False) -> bool:
        """Pull the job's image, its progress recorded as job events; False, the job cancelled, when a cancel came first.

        `in_line`: the job waits in the GPU line meanwhile, and is `queued` again once its image is here.
        """
        if self._puller is None:
            return True  # the backend keeps no images: it fetches them itself when the job starts
        if not in_line:
            self._store.update(job_id, status=JobStatus.pulling)
        elif not self._store.transition(job_id, [JobStatus.queued], status=JobStatus.pulling):
            return False  # cancelled while queued: the service recorded that end
        record = ProgressRecorder(lambda data: self._events.append(job_id, "pull", data), job.image)
        try:
            pulled = self._puller.pull(job.image, login_owner(owner_of(job)), record, stop_when=active.cancel.is_set)
        except LaunchFailure:
            if not active.cancel.is_set():
                raise
            pulled = False  # the pull broke off after the job was cancelled: that is the end to record
        if not pulled or active.cancel.is_set():
            self._finish(job_id, JobStatus.cancelled, None)
            return False
        self._events.append(job_id, "pull", {"image": job.image, "layer": "", "status": "pulled"})
        if in_line:
            self._store.transition(job_id, [JobStatus.pulling], status=JobStatus.queued)
        else:
            self._store.update(job_id, status=JobStatus.starting)
        return True

    def _record_running(self, job_id: str, run: Run, active: _ActiveJob) -> None:
        self._store.update(job_id, status=JobStatus.running, container_id=run.run_id, started_at=utcnow())
        active.started = True
        self._observe(job_id, self._observer.job_started)

    def _follow_to_end(self, job_id: str, run: Run, active: _ActiveJob) -> None:
        """Wait for the run to leave its backend's queue; copy its output to the log from the byte it has, to the end; record how it ended."""
        while True:
            try:
                if not active.started:
                    if run.wait_running():
                        self._record_running(job_id, run, active)
                    active.started = True  # or it ended in the queue: its end comes next
                self._copy_output(job_id, run.output(self._logs.size(job_id)))
                end = run.wait()
                break
            except BackendUnavailable as exc:
                found = self._found_again(job_id, exc)
                if found is None or found.state == "prepared":
                    self._finish(
                        job_id, JobStatus.error, LAUNCHER_FAILURE, "the job's container vanished while the engine was out of reach"
                    )
                    return
                run = active.run = found.run
                if active.cancel.is_set():  # asked for during the outage: carry it out now
                    self._control.submit(self._stop, job_id, run)
        if active.cancel.is_set() and not end.cut:
            # A cancel promises nothing is left behind once the job reads cancelled.
            self._release(job_id, run)
            self._finish(job_id, JobStatus.cancelled, end.exit_code)
            return
        self._record_end(job_id, end)
        # The exit code is recorded: the waiting client need not also wait for the backend's cleanup.
        active.run = None
        if end.cut:
            self._follow_after_cut(job_id, run)
        else:
            self._release(job_id, run)

    def _record_end(self, job_id: str, end: RunExit) -> None:
        """The job's end as its run gives it: who ended it when the task did not, the entrypoint's failure, or the task's code."""
        if end.interrupted is not None:
            self._finish(job_id, JobStatus(end.interrupted.status), end.exit_code, end.interrupted.reason)
        elif end.failure is not None:
            self._finish(job_id, JobStatus.error, end.exit_code, end.failure)
        else:
            self._finish(job_id, JobStatus.succeeded if end.exit_code == 0 else JobStatus.failed, end.exit_code)

    def _follow_after_cut(self, job_id: str, run: Run) -> None:
        """The run's task may outlive its recorded end (its node failed): what it still prints is added to
        the log, in a thread of its own (it lasts until the node is back), and the run is released after."""

        def follow() -> None:
            while True:
                try:
                    self._copy_output(job_id, run.output(self._logs.size(job_id)))
                    break
                except BackendUnavailable as exc:
                    self.health.lost(exc.message)
                    self.health.wait_until_up()
                except TaoError as exc:
                    log.warning("job %s: its output after its end could not be copied: %s", job_id, exc.message)
                    break
            self._logs.notify(job_id)
            self._release(job_id, run)

        threading.Thread(target=follow, name=f"after-cut-{job_id}", daemon=True).start()

    def _release(self, job_id: str, run: Run) -> None:
        """Release the run, waiting out an outage; should the backend refuse, the next reconcile tries again."""
        self._on_run(job_id, run, "release", lambda run: run.release())

    def _keep_time(self, job_id: str, limit: int | None, since: float) -> None:
        """Stop the job once `limit` seconds have passed since `since`, where the backend does not keep time limits itself."""
        if limit is not None and "time" not in self._backend.places:
            self._deadlines.watch(job_id, since + limit, lambda: self._time_up(job_id, limit))

    def _time_up(self, job_id: str, limit: int) -> None:
        """The job's time limit has passed: stop it as a cancel would, and let its end say why."""
        with self._lock:
            active = self._active.get(job_id)
        if active is None or active.finished or active.cancel.is_set():
            return
        log.info("job %s: stopping it at its time limit of %s", job_id, shown(limit))
        active.stopped_at_limit = limit
        self._events.append(job_id, "time_limit", {"limit": limit, "status": "stopping"})
        active.cancel.set()
        if active.run is not None:
            self._control.submit(self._stop, job_id, active.run)

    def _stop(self, job_id: str, run: Run) -> None:
        """Cancel the run; a cancel asked for during an outage is carried out once the backend answers."""
        self._on_run(job_id, run, "stop", lambda run: run.cancel(self._stop_timeout))

    def _on_run(self, job_id: str, run: Run, doing: str, act: Callable[[Run], None]) -> None:
        """`act` on the job's run; during an outage, wait and act on the run found again. A refusal is logged."""
        while True:
            try:
                act(run)
                return
            except BackendUnavailable as exc:
                found = self._found_again(job_id, exc)
                if found is None:
                    return
                run = found.run
            except BackendError as exc:
                log.warning("job %s: could not %s run %s: %s", job_id, doing, run.run_id[:12], exc.message)
                return

    def _abandon(self, active: _ActiveJob) -> None:
        """After a failure, stop and release the job's run, so nothing runs on unwatched."""
        if active.run is None:
            return
        try:
            active.run.release()
        except BackendError as exc:
            log.warning("could not release run %s: %s", active.run.run_id[:12], exc.message)

    def _copy_output(self, job_id: str, output: OutputStream) -> None:
        writer = self._logs.writer(job_id)
        try:
            for chunk in output:
                writer.write(chunk)
        finally:
            writer.close()

    def _finish(self, job_id: str, status: JobStatus, exit_code: int | None, error: str | None = None) -> None:
        """Record the end, then wake the job's followers at once: they need not wait for any cleanup.

        An end the database cannot take now is kept in memory and written later (unrecorded.py).
        A job stopped at its time limit ends `failed`, saying so, rather than `cancelled`.
        """
        with self._lock:
            active = self._active.get(job_id)
        if status == JobStatus.cancelled and active is not None and active.stopped_at_limit is not None:
            status, error = JobStatus.failed, f"stopped at its time limit of {shown(active.stopped_at_limit)}"
        self._deadlines.forget(job_id)
        self._progress.ended(job_id)  # its progress complete before its end is seen
        self.ends.finish(job_id, status, exit_code, error)
        self._gpus.release(job_id)  # the run has stopped: its devices are free for the next in line
        self._events.forget(job_id)
        self._wake_followers(job_id, untrack=False)
        self._observe(job_id, self._observer.job_ended)

    def _observe(self, job_id: str, tell: Callable[[Job], None]) -> None:
        """Tell the observer (notifications) of the job's recorded start or end, with the job as it now is."""
        try:
            job = self._store.find(job_id)
            if job is not None:
                tell(self.ends.shown(job))
        except Exception:  # what watches a job must never change how it goes or ends
            log.exception("job %s: its observer failed", job_id)

    def _done(self, job_id: str) -> None:
        self._gpus.release(job_id)
        self._deadlines.forget(job_id)
        self._wake_followers(job_id, untrack=True)

    def _wake_followers(self, job_id: str, *, untrack: bool) -> _ActiveJob | None:
        """Mark the job finished for its followers and wake them; `untrack` also drops it from the active set."""
        with self._lock:
            active = self._active.pop(job_id, None) if untrack else self._active.get(job_id)
        if active is not None:
            active.finished = True
        self._logs.notify(job_id)
        for listener in self._end_listeners:
            listener(job_id)
        return active


class _WorkerPool:
    """Daemon threads taking calls in FIFO order.

    Daemon threads, unlike ThreadPoolExecutor's, do not hold the process open at exit while they
    follow a job that runs for days: the job lives on and the next daemon adopts it.
    """

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


def _failure(job_id: str, exc: Exception) -> tuple[int, str]:
    """The exit code and error a job ends with when `exc` stopped its worker; logged as it deserves."""
    if isinstance(exc, LaunchFailure):
        return exc.exit_code, exc.message
    if isinstance(exc, StorageFull):  # the job can no longer be followed: it is stopped rather than left running unwatched
        log.error("job %s: %s", job_id, exc.message)
        return LAUNCHER_FAILURE, f"{exc.message}; the job was stopped, and what it printed until then is kept"
    if isinstance(exc, BackendError):
        log.warning("job %s: %s", job_id, exc.message)
        return LAUNCHER_FAILURE, exc.message
    log.error("job %s failed inside the launcher", job_id, exc_info=exc)
    return LAUNCHER_FAILURE, f"internal launcher error: {exc!r}"


def _never_pulled(job: Job) -> LaunchFailure:
    return LaunchFailure(
        f"image {job.image} is not on the engine and the job's pull policy is never; "
        f"pull it first (`tao pull {job.task}`) or run with --pull missing"
    )


def _epoch(when: datetime | None) -> float | None:
    """A time from the table (SQLite gives it back without its zone: UTC) as seconds since the epoch."""
    return when.replace(tzinfo=when.tzinfo or UTC).timestamp() if when is not None else None


def _launch_spec(job: Job, mounts: list[dict[str, Any]], places: frozenset[str]) -> LaunchSpec:
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
    )

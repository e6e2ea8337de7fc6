"""The job runner: owns each job from `queued` to its end.

One worker thread per job starts the container, copies its output into the job's log file, waits
for the exit code and removes the container. Jobs wait in `queued` while all workers are busy.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import docker.errors
import requests.exceptions

from tao_server.access import DAEMON, Caller, caller_from_peer
from tao_server.credentials import login_owner
from tao_server.executors import ContainerSpec, Executor, ImageMissing, OutputStream, StartFailure
from tao_server.events import EventLog
from tao_server.images import ImagePuller, ProgressRecorder
from tao_server.logs import LogStore
from tao_server.models import Job, JobStatus, utcnow
from tao_server.mount_pins import MountPins
from tao_server.scheduler import GpuScheduler
from tao_server.store import JobStore

log = logging.getLogger(__name__)

# The engine is unreachable or answered with an error outside a start: the launcher failed, not the task.
ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)
LAUNCHER_FAILURE = 125


@dataclass
class _ActiveJob:
    cancel: threading.Event = field(default_factory=threading.Event)
    container_id: str | None = None
    finished: bool = False


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        executor: Executor,
        logs: LogStore,
        events: EventLog,
        puller: ImagePuller,
        gpus: GpuScheduler,
        max_running: int,
        stop_timeout: float,
        pins: MountPins | None = None,
    ) -> None:
        self._gpus = gpus
        self._pins = pins or MountPins(None)
        self._store = store
        self._executor = executor
        self._logs = logs
        self._events = events
        self._puller = puller
        self._stop_timeout = stop_timeout
        self._workers = _WorkerPool(max_running, "job")
        # Jobs holding GPUs run apart: each holds at least one device, so this pool never makes one wait.
        self._gpu_workers = _WorkerPool(len(gpus.inventory), "gpu-job")
        self._closing = False
        # Stops run apart from the workers, so a cancel is never stuck behind queued jobs.
        self._control = _WorkerPool(4, "job-stop")
        self._active: dict[str, _ActiveJob] = {}
        self._lock = threading.Lock()

    # -- what the job service calls ---------------------------------------------------------

    def enqueue(self, job: Job) -> None:
        self._track(job.id)
        if not job.gpu_request:
            self._workers.submit(self._run, job.id, [])
            return
        if not self._gpus.can_ever_fit(job.gpu_request):
            have = ", ".join(self._gpus.inventory) or "none"
            self._finish(job.id, JobStatus.error, LAUNCHER_FAILURE, f"the job asks for GPUs ({job.gpu_request}) this host does not have (its GPUs: {have})")
            return
        # The job waits in `queued`, with its place in the GPU line but no worker, until its devices are free.
        self._gpus.request(job.id, job.gpu_request, lambda devices: self._hand_over(job.id, devices), job.owner_uid, job.gpu_cap)
        if self._store.get(job.id).status.terminal:  # cancelled between its insert and its place in line
            self.forget(job.id)

    def cancel(self, job_id: str) -> None:
        """Ask a pulling, starting or running job to stop; its worker records the end."""
        with self._lock:
            active = self._active.get(job_id)
        if active is None:
            return
        active.cancel.set()
        if active.container_id is not None:
            self._control.submit(self._stop, active.container_id)

    def forget(self, job_id: str) -> None:
        """A queued job was cancelled before it started: free its place in line, wake its followers."""
        if not self._gpus.withdraw(job_id):
            self._gpus.release(job_id)  # granted just now: the worker it was handed to will find it cancelled
        active = self._wake_followers(job_id, untrack=True)
        if active is not None:
            active.cancel.set()

    def gpu_position(self, job_id: str) -> int | None:
        return self._gpus.position(job_id)

    def gpu_size(self, request: str) -> int:
        return self._gpus.size(request)

    def gpu_holders(self) -> dict[str, str | None]:
        return self._gpus.holders()

    def is_finished(self, job_id: str) -> bool:
        with self._lock:
            active = self._active.get(job_id)
        if active is not None:
            return active.finished
        job = self._store.find(job_id)
        return job is None or job.status.terminal

    def shutdown(self) -> None:
        """Stop taking work. Containers keep running; the next daemon resumes them, and starts the queued ones."""
        self._closing = True
        self._workers.shutdown()
        self._gpu_workers.shutdown()
        self._control.shutdown()

    # -- start-up reconciliation ----------------------------------------------------------------

    def reconcile(self) -> None:
        """Match the table with the containers that carry this daemon's label, after a restart."""
        containers = {state.job_id: state for state in self._executor.owned_containers()}
        requeued = []
        for job in self._store.active():
            state = containers.pop(job.id, None)
            if job.cancel_requested:  # asked to stop before the restart: finish what was asked
                if state is not None:
                    self._executor.remove(state.container_id)
                self._finish(job.id, JobStatus.cancelled, state.exit_code if state else None)
            elif state is not None and (state.running or state.exit_code is not None):
                log.info("resuming job %s (container %s)", job.id, state.container_id[:12])
                self._gpus.hold(job.id, job.gpus, owner=job.owner_uid)
                self._store.update(job.id, status=JobStatus.running, container_id=state.container_id)
                self._track(job.id).container_id = state.container_id
                (self._gpu_workers if job.gpus else self._workers).submit(self._resume, job.id, state.container_id)
            elif job.status == JobStatus.running:
                self._finish(job.id, JobStatus.error, LAUNCHER_FAILURE, "the job's container disappeared while the daemon was down")
            else:  # queued, or stopped before its container ran: start again from the top
                if state is not None:
                    self._executor.remove(state.container_id)
                self._store.update(job.id, status=JobStatus.queued, container_id=None)
                requeued.append(job)
        # Only now that every resumed job holds its devices again may queued ones be given any.
        for job in requeued:
            self.enqueue(job)
        for state in containers.values():
            log.info("removing container %s left by job %s", state.container_id[:12], state.job_id)
            self._executor.remove(state.container_id)

    # -- worker side ----------------------------------------------------------------------------

    def _track(self, job_id: str) -> _ActiveJob:
        with self._lock:
            return self._active.setdefault(job_id, _ActiveJob())

    def _hand_over(self, job_id: str, devices: list[str]) -> None:
        if not self._closing:
            self._gpu_workers.submit(self._run, job_id, devices)

    def _run(self, job_id: str, devices: list[str]) -> None:
        if self._closing:
            return  # still queued in the table: the next daemon starts it
        self._guarded(job_id, lambda job_id, active: self._start_and_follow(job_id, active, devices))

    def _resume(self, job_id: str, container_id: str) -> None:
        def follow(job_id: str, active: _ActiveJob) -> None:
            output = self._executor.output(container_id)
            self._follow_to_end(job_id, container_id, active, output, skip=self._logs.size(job_id))

        self._guarded(job_id, follow)

    def _guarded(self, job_id: str, body: Callable[[str, _ActiveJob], None]) -> None:
        """Run `body` for the job; whatever goes wrong, record an end and leave no container behind."""
        active = self._track(job_id)
        try:
            body(job_id, active)
        except StartFailure as failure:
            self._abandon(active)
            self._finish(job_id, JobStatus.error, failure.exit_code, failure.message)
        except ENGINE_ERRORS as exc:
            log.warning("job %s: engine error: %s", job_id, exc)
            self._abandon(active)
            self._finish(job_id, JobStatus.error, LAUNCHER_FAILURE, f"Docker engine error: {exc}")
        except Exception as exc:  # the worker must record every end, or the job would hang in `running`
            log.exception("job %s failed inside the launcher", job_id)
            self._abandon(active)
            self._finish(job_id, JobStatus.error, LAUNCHER_FAILURE, f"internal launcher error: {exc!r}")
        finally:
            self._done(job_id)

    def _start_and_follow(self, job_id: str, active: _ActiveJob, devices: list[str]) -> None:
        job = self._store.get(job_id)
        job.gpus = devices
        if not self._store.transition(job_id, [JobStatus.queued], status=JobStatus.starting, gpus=job.gpus):
            return  # cancelled while it waited; _done frees the devices
        try:
            container_id = self._create(job_id, job, active)
            if container_id is None:
                return
            output = self._executor.attach(container_id, tty=job.docker_options.get("tty", False))
            try:
                self._executor.start(container_id)
            except BaseException:
                output.close()
                raise
        finally:
            self._pins.release(job_id)  # a started container holds its own copy of the mounts
        self._store.update(job_id, status=JobStatus.running, container_id=container_id, started_at=utcnow())
        if active.cancel.is_set():  # the cancel arrived before the container id was known
            self._control.submit(self._stop, container_id)
        self._follow_to_end(job_id, container_id, active, output, skip=0)

    def _create(self, job_id: str, job: Job, active: _ActiveJob) -> str | None:
        """The job's container, its image pulled as the job's pull policy says; None when cancelled meanwhile."""
        if job.pull_policy == "always" and not self._pull(job_id, job, active):
            return None
        # As late as possible: a source swapped for a symlink while the job waited must not count.
        spec = _spec(job, self._pins.prepare(job.id, job.mounts, confined=not _owner(job).admin))
        try:
            container_id = self._executor.create(spec)
        except ImageMissing:
            if job.pull_policy == "never":
                raise StartFailure(
                    f"image {job.image} is not on the engine and the job's pull policy is never; "
                    f"pull it first (`tao pull {job.task}`) or run with --pull missing"
                ) from None
            if not self._pull(job_id, job, active):
                return None
            container_id = self._executor.create(spec)
        active.container_id = container_id
        if active.cancel.is_set():
            self._executor.remove(container_id)
            self._finish(job_id, JobStatus.cancelled, None)
            return None
        return container_id

    def _pull(self, job_id: str, job: Job, active: _ActiveJob) -> bool:
        """Pull the job's image, its progress recorded as job events; False, the job cancelled, when a cancel came first."""
        self._store.update(job_id, status=JobStatus.pulling)
        record = ProgressRecorder(lambda data: self._events.append(job_id, "pull", data), job.image)
        try:
            pulled = self._puller.pull(job.image, login_owner(_owner(job)), record, stop_when=active.cancel.is_set)
        except StartFailure:
            if not active.cancel.is_set():
                raise
            pulled = False  # the pull broke off after the job was cancelled: that is the end to record
        if not pulled or active.cancel.is_set():
            self._finish(job_id, JobStatus.cancelled, None)
            return False
        self._events.append(job_id, "pull", {"image": job.image, "layer": "", "status": "pulled"})
        self._store.update(job_id, status=JobStatus.starting)
        return True

    def _follow_to_end(self, job_id: str, container_id: str, active: _ActiveJob, output: OutputStream, skip: int) -> None:
        self._copy_output(job_id, output, skip)
        exit_code = self._executor.wait(container_id)
        if active.cancel.is_set():
            # A cancel promises nothing is left behind once the job reads cancelled.
            self._executor.remove(container_id)
            self._finish(job_id, JobStatus.cancelled, exit_code)
            return
        failure = self._executor.entrypoint_failure(exit_code, self._logs.read(job_id, 0, 4096))
        if failure is not None:
            self._finish(job_id, JobStatus.error, failure.exit_code, failure.message)
        else:
            self._finish(job_id, JobStatus.succeeded if exit_code == 0 else JobStatus.failed, exit_code)
        # The exit code is recorded: the waiting client need not also wait for the engine's cleanup.
        # Should this removal fail, the next start-up's reconcile removes the container.
        active.container_id = None
        try:
            self._executor.remove(container_id)
        except ENGINE_ERRORS as exc:
            log.warning("job %s: could not remove container %s: %s", job_id, container_id[:12], exc)

    def _abandon(self, active: _ActiveJob) -> None:
        """After a failure, stop and remove the job's container, so nothing runs on unwatched."""
        if active.container_id is None:
            return
        try:
            self._executor.remove(active.container_id)
        except ENGINE_ERRORS as exc:
            log.warning("could not remove container %s: %s", active.container_id[:12], exc)

    def _copy_output(self, job_id: str, output: OutputStream, skip: int) -> None:
        """Append the container's output to the job's log; `skip` bytes are already there (a resume)."""
        writer = self._logs.writer(job_id)
        try:
            for chunk in output:
                if skip:
                    dropped = min(skip, len(chunk))
                    chunk, skip = chunk[dropped:], skip - dropped
                    if not chunk:
                        continue
                writer.write(chunk)
        finally:
            writer.close()

    def _stop(self, container_id: str) -> None:
        try:
            self._executor.stop(container_id, self._stop_timeout)
        except ENGINE_ERRORS as exc:
            log.warning("could not stop container %s: %s", container_id[:12], exc)

    def _finish(self, job_id: str, status: JobStatus, exit_code: int | None, error: str | None = None) -> None:
        """Record the end, then wake the job's followers at once: they need not wait for any cleanup."""
        self._store.finish(job_id, status, exit_code, error)
        self._gpus.release(job_id)  # the container has stopped: its devices are free for the next in line
        self._events.forget(job_id)
        self._wake_followers(job_id, untrack=False)

    def _done(self, job_id: str) -> None:
        self._gpus.release(job_id)
        self._wake_followers(job_id, untrack=True)

    def _wake_followers(self, job_id: str, *, untrack: bool) -> _ActiveJob | None:
        """Mark the job finished for its followers and wake them; `untrack` also drops it from the active set."""
        with self._lock:
            active = self._active.pop(job_id, None) if untrack else self._active.get(job_id)
        if active is not None:
            active.finished = True
        self._logs.notify(job_id)
        return active


class _WorkerPool:
    """Daemon threads taking calls in FIFO order.

    Daemon threads, unlike ThreadPoolExecutor's, do not hold the process open at exit while they
    follow a container that runs for days: the container lives on and the next daemon resumes it.
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


def _owner(job: Job) -> Caller:
    """The job's submitter as a caller, so its pull uses the logins that submitter would act on."""
    if job.owner_uid is None or job.owner_gid is None:
        return DAEMON
    return caller_from_peer((job.owner_uid, job.owner_gid, ()))


def _spec(job: Job, mounts: list[dict[str, Any]]) -> ContainerSpec:
    return ContainerSpec(
        job_id=job.id,
        image=job.image,
        command=job.command,
        mounts=mounts,
        envs=job.envs,
        docker_options=job.docker_options,
        gpus=job.gpus,
    )

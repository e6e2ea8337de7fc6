"""The end of a job: recorded, its followers woken, its GPUs given back, its run stopped and released.

Every way a job ends comes through `finish`: its end recorded (or kept in memory while the
database refuses it: unrecorded.py), its status file read one last time, its devices handed to
the next in line, its followers woken at once (they need not wait for any cleanup) and its
observer told. A stop (`cancel`, a time limit) asks the run to end and lets its worker record how
it did; `guarded` is every worker's frame, so that whatever breaks, the job ends with a true
status and no run is left behind unwatched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from tao_server.backends import Run
from tao_server.errors import LAUNCHER_FAILURE, BackendError, LaunchFailure, StorageFull
from tao_server.jobs.runner.active import ActiveJob
from tao_server.jobs.runner.deadlines import limit_end
from tao_server.jobs.runner.outage import OutageRecovery
from tao_server.jobs.runner.parts import RunnerParts
from tao_server.jobs.runner.retries import Retries
from tao_server.models import Job, JobStatus

log = logging.getLogger(__name__)


class ImageGone(Exception):
    """The job's image, pulled while it waited, is not there now that it has its GPUs: it goes back in line."""


class Ending:
    def __init__(self, parts: RunnerParts, outage: OutageRecovery) -> None:
        self._parts = parts
        self._outage = outage
        self._retries = Retries(parts)
        # Set by JobRunner: takes a job back once its retry's back-off is over.
        self.requeue: Callable[[str], None] = lambda job_id: None

    def finish(self, job_id: str, status: JobStatus, exit_code: int | None, error: str | None = None) -> None:
        """Record the end, then wake the job's followers at once: they need not wait for any cleanup.

        An end the database cannot take now is kept in memory and written later (unrecorded.py).
        A job stopped at its time limit ends `failed`, saying so, rather than `cancelled`. A task that
        failed with retries left is not ended: it waits `queued` for its next attempt (retries.py).
        """
        parts = self._parts
        active = parts.active.get(job_id)
        if active is not None:
            status, error = limit_end(status, error, active.stopped_at_limit)
        if active is not None and status == JobStatus.failed and self._retries.again(job_id, exit_code, active):
            parts.deadlines.forget(job_id)
            parts.gpus.release(job_id)
            return
        parts.deadlines.forget(job_id)
        parts.progress.ended(job_id)  # its progress complete before its end is seen
        parts.ends.finish(job_id, status, exit_code, error)
        parts.gpus.release(job_id)  # the run has stopped: its devices are free for the next in line
        parts.events.forget(job_id)
        self.wake_followers(job_id, untrack=False)
        self.observe(job_id, parts.observer.job_ended)

    def retry_due(self, job_id: str) -> float | None:
        """When a job whose task failed runs again (time.time()), while it waits out its back-off."""
        return self._retries.due(job_id)

    def forget(self, job_id: str) -> None:
        """A queued job was cancelled before it started: free its place in line, wake its followers."""
        parts = self._parts
        if not parts.gpus.withdraw(job_id):
            parts.gpus.release(job_id)  # granted just now: the worker it was handed to will find it cancelled
        active = self.wake_followers(job_id, untrack=True)
        if active is not None:
            active.cancel.set()
        parts.progress.ended(job_id)
        self.observe(job_id, parts.observer.job_ended)

    def cancel(self, job_id: str) -> None:
        """Ask a pulling, starting or running job to stop; its worker records the end."""
        active = self._parts.active.get(job_id)
        if active is None:
            return
        active.cancel.set()
        if active.run is not None:
            self._parts.control.submit(self.stop, job_id, active.run)

    def stop(self, job_id: str, run: Run) -> None:
        """Cancel the run; a cancel asked for during an outage is carried out once the backend answers."""
        self._outage.act_on_run(job_id, run, "stop", lambda run: run.cancel(self._parts.stop_timeout))

    def release(self, job_id: str, run: Run) -> None:
        """Release the run, waiting out an outage; should the backend refuse, the next reconcile tries again."""
        self._outage.act_on_run(job_id, run, "release", lambda run: run.release())

    def done(self, job_id: str) -> None:
        """The job's worker is done with it: its devices, its deadline and its place among the active jobs go.

        A job that runs again is taken back after its back-off, now that nothing of its last attempt remains.
        """
        self._parts.gpus.release(job_id)
        self._parts.deadlines.forget(job_id)
        active = self.wake_followers(job_id, untrack=True)
        if active is not None and active.retry_in is not None:
            self._retries.later(job_id, active.retry_in, self.requeue)

    def wake_followers(self, job_id: str, *, untrack: bool) -> ActiveJob | None:
        """Mark the job finished for its followers and wake them; `untrack` also drops it from the active set."""
        active = self._parts.active.pop(job_id) if untrack else self._parts.active.get(job_id)
        if active is not None:
            active.finished = True
        self._parts.logs.notify(job_id)
        for listener in self._parts.end_listeners:
            listener(job_id)
        return active

    def observe(self, job_id: str, tell: Callable[[Job], None]) -> None:
        """Tell the observer (notifications) of the job's recorded start or end, with the job as it now is."""
        try:
            job = self._parts.store.find(job_id)
            if job is not None:
                tell(self._parts.ends.shown(job))
        except Exception:  # what watches a job must never change how it goes or ends
            log.exception("job %s: its observer failed", job_id)

    def guarded(
        self, job_id: str, body: Callable[[str, ActiveJob], None], on_image_gone: Callable[[str, ActiveJob], None] | None = None
    ) -> None:
        """Run `body` for the job, in its worker; whatever goes wrong, record an end and leave no run behind.

        `on_image_gone`: where `body` starts a run, what follows when the job's image went between its pull
        and its GPUs (ImageGone): it waits in line again.
        """
        active = self._parts.active.track(job_id)
        back_in_line = False
        try:
            body(job_id, active)
        except ImageGone:
            back_in_line = True
        except Exception as exc:  # noqa: BLE001  (the worker must record every end, or the job would hang in `running`)
            exit_code, message = failure(job_id, exc)
            self._abandon(active)
            self.finish(job_id, JobStatus.error, exit_code, message)
        finally:
            if back_in_line and on_image_gone is not None:
                on_image_gone(job_id, active)
            else:
                self.done(job_id)

    def _abandon(self, active: ActiveJob) -> None:
        """After a failure, stop and release the job's run, so nothing runs on unwatched."""
        if active.run is None:
            return
        try:
            active.run.release()
        except BackendError as exc:
            log.warning("could not release run %s: %s", active.run.run_id[:12], exc.message)


def failure(job_id: str, exc: Exception) -> tuple[int, str]:
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

"""A started run followed to its end: its output copied into the job's log, its end recorded, the run released.

A backend that queues jobs itself (Slurm) may hold a started run: the job reads `queued`, with the
backend's reason as its condition, until `Run.wait_running` says it runs. A run that did not end
by itself (cancelled on the cluster, a failed node, a container removed behind the daemon's back)
ends with the status and reason its backend gives (RunExit.interrupted), never `succeeded`; one
whose task may outlive that end (a failed node) keeps its output copied into the log, in a thread
of its own, until the task is gone, and is released only then.
"""

from __future__ import annotations

import logging
import threading

from tao_server.backends import OutputStream, Run, RunExit
from tao_server.errors import LAUNCHER_FAILURE, BackendUnavailable, TaoError
from tao_server.jobs.runner.active import ActiveJob
from tao_server.jobs.runner.ending import Ending
from tao_server.jobs.runner.outage import OutageRecovery
from tao_server.jobs.runner.parts import RunnerParts
from tao_server.models import JobStatus, utcnow

log = logging.getLogger(__name__)


class Following:
    def __init__(self, parts: RunnerParts, ending: Ending, outage: OutageRecovery) -> None:
        self._parts = parts
        self._ending = ending
        self._outage = outage

    def resume(self, job_id: str, run: Run) -> None:
        """A worker's call for a run adopted after a restart: follow it on to its end."""
        self._ending.guarded(job_id, lambda job_id, active: self.follow_to_end(job_id, run, active))

    def record_running(self, job_id: str, run: Run, active: ActiveJob) -> None:
        self._parts.store.update(job_id, status=JobStatus.running, container_id=run.run_id, started_at=utcnow())
        active.started = True
        self._ending.observe(job_id, self._parts.observer.job_started)

    def follow_to_end(self, job_id: str, run: Run, active: ActiveJob) -> None:
        """Wait for the run to leave its backend's queue; copy its output to the log from the byte it has, to the end; record how it ended.

        A job run again after a failure (retries.py) appends each attempt's output to its one log: the run's
        own output starts where its attempt does.
        """
        job = self._parts.store.find(job_id)
        attempt_start = job.attempt_offsets[-1] if job is not None and job.attempt_offsets else 0
        while True:
            try:
                if not active.started:
                    if run.wait_running():
                        self.record_running(job_id, run, active)
                    active.started = True  # or it ended in the queue: its end comes next
                self._copy_output(job_id, run.output(self._parts.logs.size(job_id) - attempt_start))
                end = run.wait()
                break
            except BackendUnavailable as exc:
                found = self._outage.found_again(job_id, exc)
                if found is None or found.state == "prepared":
                    self._ending.finish(
                        job_id, JobStatus.error, LAUNCHER_FAILURE, "the job's container vanished while the engine was out of reach"
                    )
                    return
                run = active.run = found.run
                if active.cancel.is_set():  # asked for during the outage: carry it out now
                    self._parts.control.submit(self._ending.stop, job_id, run)
        if active.cancel.is_set() and not end.cut:
            # A cancel promises nothing is left behind once the job reads cancelled.
            self._ending.release(job_id, run)
            self._ending.finish(job_id, JobStatus.cancelled, end.exit_code)
            return
        self._record_end(job_id, end)
        # The exit code is recorded: the waiting client need not also wait for the backend's cleanup.
        active.run = None
        if end.cut:
            self._follow_after_cut(job_id, run)
        else:
            self._ending.release(job_id, run)

    def _record_end(self, job_id: str, end: RunExit) -> None:
        """The job's end as its run gives it: who ended it when the task did not, the entrypoint's failure, or the task's code."""
        if end.interrupted is not None:
            self._ending.finish(job_id, JobStatus(end.interrupted.status), end.exit_code, end.interrupted.reason)
        elif end.failure is not None:
            self._ending.finish(job_id, JobStatus.error, end.exit_code, end.failure)
        else:
            self._ending.finish(job_id, JobStatus.succeeded if end.exit_code == 0 else JobStatus.failed, end.exit_code)

    def _follow_after_cut(self, job_id: str, run: Run) -> None:
        """The run's task may outlive its recorded end (its node failed): what it still prints is added to
        the log, in a thread of its own (it lasts until the node is back), and the run is released after."""
        parts = self._parts

        def follow() -> None:
            while True:
                try:
                    self._copy_output(job_id, run.output(parts.logs.size(job_id)))
                    break
                except BackendUnavailable as exc:
                    parts.health.lost(exc.message)
                    parts.health.wait_until_up()
                except TaoError as exc:
                    log.warning("job %s: its output after its end could not be copied: %s", job_id, exc.message)
                    break
            parts.logs.notify(job_id)
            self._ending.release(job_id, run)

        threading.Thread(target=follow, name=f"after-cut-{job_id}", daemon=True).start()

    def _copy_output(self, job_id: str, output: OutputStream) -> None:
        writer = self._parts.logs.writer(job_id)
        try:
            for chunk in output:
                writer.write(chunk)
        finally:
            writer.close()

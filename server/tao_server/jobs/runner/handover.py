"""Dependencies a backend holds itself ("after" in Backend.places: Slurm's --dependency=afterok:ID).

A job that waits for others is handed to such a backend as soon as each dependency that has not
ended is submitted there on its last attempt (not one with retries left: the backend would read
its first failure as final), so the backend starts it the moment they end, with no round trip
through the daemon. The daemon's record settles the rest, since a cluster forgets old jobs: a
dependency that ended as needed is not passed on at all, and one that did not cancels the job
before it is submitted. A run the backend ended unstarted because a dependency failed is recorded
`cancelled` with the message the daemon gives on any backend, naming that dependency (and its
pipeline step) and how it ended.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tao_server.backends import RunDependency
from tao_server.jobs.dependencies import DependencyStore
from tao_server.jobs.runner.parts import RunnerParts
from tao_server.models import DependencyKind, JobStatus

# How long a run the backend ended unstarted waits for the daemon to record the dependency that
# caused it: the backend may tell of the dependent's end a tick before the dependency's.
DEPENDENCY_END_WAIT = 15.0

_HOW = {
    JobStatus.failed: "failed",
    JobStatus.error: "ended in error",
    JobStatus.cancelled: "was cancelled",
}


class DependencyBroken(Exception):
    """A dependency ended as the job cannot follow: the job is cancelled, unstarted, with this message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Handover:
    def __init__(self, parts: RunnerParts, dependencies: DependencyStore, ended_status: Callable[[str], JobStatus | None]) -> None:
        self._parts = parts
        self._dependencies = dependencies
        self._ended_status = ended_status
        self.holds = "after" in parts.backend.places
        self._ends = threading.Condition()
        parts.end_listeners.append(self._ended)

    def submitted(self, job_id: str) -> bool:
        """Whether the job's run is the backend's, on its last attempt: a dependent may be handed over to wait for it there."""
        job = self._parts.store.find(job_id)
        return job is not None and job.container_id is not None and not job.status.terminal and job.attempt > job.retries

    def after(self, job_id: str) -> tuple[RunDependency, ...]:
        """The runs the backend is to hold the job for; DependencyBroken when the record shows one ended as it must not."""
        if not self.holds:
            return ()
        held = []
        for edge in self._dependencies.of(job_id):
            status = self._ended_status(edge.after_id)
            if status is None:
                dependency = self._parts.store.find(edge.after_id)
                if dependency is not None and dependency.container_id is not None:
                    held.append(RunDependency(dependency.container_id, "ok" if edge.kind == DependencyKind.ok else "any"))
            elif edge.kind == DependencyKind.ok and status != JobStatus.succeeded:
                raise DependencyBroken(collapse_message(self._parts, edge.after_id, status))
        return tuple(held)

    def unstarted_end(self, job_id: str) -> str | None:
        """Why a run the backend ended before it ever ran did not start: the first of its dependencies that
        had to succeed and did not, once the daemon has recorded it; None when none did (someone else ended it)."""
        if not self.holds:
            return None
        needed = [edge.after_id for edge in self._dependencies.of(job_id) if edge.kind == DependencyKind.ok]
        deadline = time.monotonic() + DEPENDENCY_END_WAIT
        with self._ends:
            while True:
                ends = {dep: self._ended_status(dep) for dep in needed}
                broken = [(dep, status) for dep, status in ends.items() if status is not None and status != JobStatus.succeeded]
                if broken:
                    return collapse_message(self._parts, *broken[0])
                left = deadline - time.monotonic()
                if all(ends.values()) or left <= 0:
                    return None
                self._ends.wait(timeout=left)

    def _ended(self, job_id: str) -> None:
        with self._ends:
            self._ends.notify_all()


def collapse_message(parts: RunnerParts, dependency: str, status: JobStatus | None) -> str:
    """ "not started: its dependency ID (step prune) failed (exit code 3)"."""
    job = parts.store.find(dependency)
    how = _HOW.get(status, "is gone") if status is not None else "is gone"
    if status == JobStatus.failed and job is not None and job.exit_code is not None:
        how = f"failed (exit code {job.exit_code})"
    named = f"{dependency} (step {job.step})" if job is not None and job.step else dependency
    return f"not started: its dependency {named} {how}"

"""Jobs that wait for other jobs (`--after`, `--after-any`, a pipeline's `after:`) before they reach the workers.

A job with dependencies waits here in `queued`, holding no worker, GPU or place in the GPU line,
its condition "waiting for ID". It is settled the moment the last of them ends (an end listener:
event-driven, never polled): when every `after` dependency succeeded, it goes on to `Queueing`;
when one failed, errored or was cancelled, it ends `cancelled` without a run, its message naming
that dependency and how it ended, and its own end settles the jobs that wait for it in turn.
A job being retried is not ended: its dependents wait for its last attempt.
"""

from __future__ import annotations

import threading
from collections import defaultdict

from tao_server.jobs.dependencies import DependencyStore
from tao_server.jobs.runner.ending import Ending
from tao_server.jobs.runner.parts import RunnerParts
from tao_server.jobs.runner.queueing import Queueing
from tao_server.models import DependencyKind, Job, JobStatus, utcnow

_HOW = {
    JobStatus.failed: "failed",
    JobStatus.error: "ended in error",
    JobStatus.cancelled: "was cancelled",
}


class Waiting:
    def __init__(self, parts: RunnerParts, queueing: Queueing, ending: Ending, dependencies: DependencyStore) -> None:
        self._parts = parts
        self._queueing = queueing
        self._ending = ending
        self._dependencies = dependencies
        self._lock = threading.Lock()
        self._waits: dict[str, dict[str, DependencyKind]] = {}  # waiting job -> its dependencies
        self._dependents: defaultdict[str, set[str]] = defaultdict(set)  # dependency -> jobs waiting for it
        parts.end_listeners.append(self._ended)

    def enqueue(self, job: Job) -> None:
        """Take a recorded `queued` job: on to the workers when it waits for nothing, or for nothing that is still to end."""
        edges = self._dependencies.of(job.id)
        if not edges:
            self._queueing.enqueue(job)
            return
        with self._lock:
            self._waits[job.id] = {edge.after_id: edge.kind for edge in edges}
            for edge in edges:
                self._dependents[edge.after_id].add(job.id)
        self._settle(job.id)

    def condition(self, job_id: str) -> str | None:
        """ "waiting for ID, ID" while the job waits for jobs that have not ended."""
        with self._lock:
            waits = list(self._waits.get(job_id, ()))
        if not waits:
            return None
        pending = [dep for dep in waits if not self._ended_status(dep)]
        return f"waiting for {', '.join(pending or waits)}"

    def _ended(self, job_id: str) -> None:
        """A job ended (or was cancelled while it waited): settle those waiting for it."""
        with self._lock:
            if job_id in self._waits and self._ended_status(job_id):
                self._drop(job_id)
            dependents = sorted(self._dependents.get(job_id, ()))
        for dependent in dependents:
            self._settle(dependent)

    def _settle(self, job_id: str) -> None:
        """Once every dependency has ended: start the job, or cancel it for the first that did not end as it needs."""
        with self._lock:
            waits = dict(self._waits.get(job_id, {}))
        if not waits:
            return
        ends = {dep: self._ended_status(dep) for dep in waits}
        if not all(ends.values()):
            return
        with self._lock:
            if job_id not in self._waits:
                return  # another thread settled it
            self._drop(job_id)
        broken = [(dep, ends[dep]) for dep, kind in waits.items() if kind == DependencyKind.ok and ends[dep] != JobStatus.succeeded]
        if broken:
            self._cancel(job_id, *broken[0])
            return
        job = self._parts.store.find(job_id)
        if job is not None and job.status == JobStatus.queued:
            self._queueing.enqueue(job)

    def _cancel(self, job_id: str, dependency: str, status: JobStatus | None) -> None:
        how = _HOW.get(status, "is gone") if status is not None else "is gone"
        if status == JobStatus.failed and (dep := self._parts.store.find(dependency)) is not None and dep.exit_code is not None:
            how = f"failed (exit code {dep.exit_code})"
        message = f"not started: its dependency {dependency} {how}"
        store = self._parts.store
        if store.transition(job_id, [JobStatus.queued], status=JobStatus.cancelled, error=message, finished_at=utcnow()):
            self._parts.events.append(job_id, "dependency", {"job": dependency, "status": str(status or "gone")})
            self._ending.forget(job_id)

    def _ended_status(self, job_id: str) -> JobStatus | None:
        """The job's end, once it has one; None while it runs or waits (a retry's wait included). A job gone counts as cancelled."""
        job = self._parts.store.find(job_id)
        if job is None:
            return JobStatus.cancelled
        status = self._parts.ends.shown(job).status
        return status if status.terminal else None

    def _drop(self, job_id: str) -> None:
        """Forget the job's waits (the lock held)."""
        for dep in self._waits.pop(job_id, {}):
            dependents = self._dependents.get(dep)
            if dependents is not None:
                dependents.discard(job_id)
                if not dependents:
                    del self._dependents[dep]

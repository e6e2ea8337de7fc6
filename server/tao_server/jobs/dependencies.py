"""DependencyStore: the `job_dependency` table, the edges between a job and the jobs it waits for.

An edge is written with its job, in the same transaction (JobStore.insert), so a daemon restarted
at any moment finds every job's dependencies again (runner/waiting.py reads them on enqueue).
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from tao_server.jobs.store import JobStore
from tao_server.models import DependencyKind, JobDependency


def edges(job_id: str, after: list[str], after_any: list[str]) -> list[JobDependency]:
    """The rows saying that `job_id` waits for `after` (to succeed) and `after_any` (to end); a job named in both must succeed."""
    rows = [JobDependency(job_id=job_id, after_id=dep, kind=DependencyKind.ok) for dep in dict.fromkeys(after)]
    return rows + [
        JobDependency(job_id=job_id, after_id=dep, kind=DependencyKind.any) for dep in dict.fromkeys(after_any) if dep not in after
    ]


class DependencyStore:
    def __init__(self, store: JobStore) -> None:
        self._store = store

    def of(self, job_id: str) -> list[JobDependency]:
        """The jobs `job_id` waits for, in the order they were given."""
        with Session(self._store.engine, expire_on_commit=False) as session:
            return list(session.exec(select(JobDependency).where(col(JobDependency.job_id) == job_id)).all())

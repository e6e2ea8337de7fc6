"""Reads and writes of the job table. Every state change is a short transaction.

A write the disk cannot take (full, read-only, failing) is StorageFull naming the database file
and what is wrong with it; a database file deleted or replaced under the daemon is DatabaseGone
(runtime/db_watch.py), checked before each write. Reads go on working.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from tao_server.errors import DuplicateJobId, JobNotFound, StorageFull
from tao_server.models import ACTIVE_STATUSES, Job, JobDependency, JobStatus, utcnow
from tao_server.runtime import disk
from tao_server.runtime.db_watch import DatabaseWatch

_INSERTED_COLUMNS = [column.name for column in Job.__table__.columns if column.name != "seq"]  # type: ignore[attr-defined]
_INSERT_JOB = insert(Job.__table__)  # type: ignore[attr-defined]
_INSERT_DEPENDENCY = insert(JobDependency.__table__)  # type: ignore[attr-defined]


class JobStore:
    def __init__(self, engine: Engine, watch: DatabaseWatch | None = None) -> None:
        self.engine = engine
        self.watch = watch
        # SQLite admits one writer at a time and makes the others sleep and retry; queueing the
        # daemon's own writers here instead keeps submissions fast under concurrency.
        self._write_lock = threading.Lock()

    def insert(self, job: Job, dependencies: list[JobDependency] = []) -> Job:  # noqa: B006
        """Insert the job, with the edges to the jobs it waits for in the same transaction (a restart finds both or neither)."""
        # A Core insert: the ORM's unit of work costs ten times the write itself on this hot path.
        values = {name: getattr(job, name) for name in _INSERTED_COLUMNS}
        with self._writing(), self.engine.begin() as connection:
            try:
                inserted = connection.execute(_INSERT_JOB, values).inserted_primary_key
            except IntegrityError:
                raise DuplicateJobId(f"job id {job.id!r} is already taken", field="id") from None
            if dependencies:
                connection.execute(_INSERT_DEPENDENCY, [edge.model_dump() for edge in dependencies])
        job.seq = inserted[0] if inserted is not None else None
        return job

    def writing(self) -> AbstractContextManager[None]:
        """One writer at a time into the daemon's database, for the stores of its other tables (notify/, jobs/progress/metric_store.py); StorageFull as here."""
        return self._writing()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One writer at a time, into the file the daemon opened; a write the disk refuses is StorageFull, naming the file."""
        with self._write_lock:
            if self.watch is not None:
                self.watch.check()
            try:
                yield
            except OperationalError as exc:
                reason = str(exc.orig)
                if not any(word in reason for word in ("full", "disk I/O", "readonly", "read-only", "unable to open")):
                    raise
                path = Path(str(self.engine.url.database))
                raise StorageFull(
                    f"cannot write the job table {path}: {reason}; {disk.database_advice(path, reason)} (jobs go on)"
                ) from None

    def get(self, job_id: str) -> Job:
        with Session(self.engine, expire_on_commit=False) as session:
            job = session.exec(select(Job).where(Job.id == job_id)).first()
        if job is None:
            raise JobNotFound.for_id(job_id)
        return job

    def find(self, job_id: str) -> Job | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.exec(select(Job).where(Job.id == job_id)).first()

    def update(self, job_id: str, **fields: Any) -> None:
        with self._writing(), Session(self.engine) as session:
            session.exec(update(Job).where(col(Job.id) == job_id).values(**fields))
            session.commit()

    def transition(self, job_id: str, expected: Iterable[JobStatus], **fields: Any) -> bool:
        """Apply `fields` only while the job is in one of `expected`; False when it was not (a lost race)."""
        with self._writing(), Session(self.engine) as session:
            result = session.exec(update(Job).where(col(Job.id) == job_id, col(Job.status).in_(list(expected))).values(**fields))
            session.commit()
            return result.rowcount == 1

    def cancel_unstarted(self, job_id: str) -> bool:
        """Record a queued job cancelled at once, while no run of it exists; False when it is not queued, or
        has a run that waits in its backend's queue (Slurm's): that one must be stopped there first."""
        with self._writing(), Session(self.engine) as session:
            unstarted = update(Job).where(col(Job.id) == job_id, col(Job.status) == JobStatus.queued, col(Job.container_id).is_(None))
            result = session.exec(unstarted.values(status=JobStatus.cancelled, cancel_requested=True, finished_at=utcnow()))
            session.commit()
            return result.rowcount == 1

    def finish(self, job_id: str, status: JobStatus, exit_code: int | None, error: str | None = None) -> None:
        self.update(job_id, status=status, exit_code=exit_code, error=error, finished_at=utcnow())

    def page(
        self,
        statuses: list[JobStatus] | None,
        limit: int,
        before_seq: int | None,
        container_id: str | None = None,
        owner_uid: int | None = None,
        task: str | None = None,
    ) -> list[Job]:
        """Newest first; `before_seq` is the cursor from the previous page."""
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.exec(page_query(statuses, limit, before_seq, container_id, owner_uid, task)).all())

    def of_pipeline(self, pipeline_id: str) -> list[Job]:
        """The jobs of a pipeline's steps, in the order they were submitted."""
        query = select(Job).where(col(Job.pipeline_id) == pipeline_id).order_by(col(Job.seq))
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.exec(query).all())

    def active(self) -> list[Job]:
        query = select(Job).where(col(Job.status).in_(list(ACTIVE_STATUSES))).order_by(col(Job.seq))
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.exec(query).all())

    def of_sweep(self, sweep_id: str) -> list[Job]:
        """A sweep's trial jobs, in the order they were submitted."""
        query = select(Job).where(col(Job.sweep_id) == sweep_id).order_by(col(Job.seq))
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.exec(query).all())

    def gpu_usage(self, since: datetime) -> list[tuple[int | None, float, datetime]]:
        """(owner, GPU-seconds, end) of each job that held GPUs and ended after `since`: fair share's memory across restarts."""
        query = select(Job.owner_uid, Job.gpus, Job.started_at, Job.finished_at).where(
            col(Job.finished_at) >= since,
            col(Job.started_at).is_not(None),
            func.json_array_length(Job.gpus) > 0,
        )
        with Session(self.engine) as session:
            rows = session.exec(query).all()
        return [
            (owner, len(gpus) * max(0.0, (finished - started).total_seconds()), finished)
            for owner, gpus, started, finished in rows
            if started is not None and finished is not None
        ]

    def counts(self, owner_uid: int | None = None) -> dict[str, int]:
        """Jobs in each status: all of them, or those of `owner_uid`."""
        query = select(Job.status, func.count()).group_by(Job.status)
        if owner_uid is not None:
            query = query.where(col(Job.owner_uid) == owner_uid)
        with Session(self.engine) as session:
            rows = session.exec(query).all()
        return {JobStatus(status).value: count for status, count in rows}


def page_query(
    statuses: list[JobStatus] | None,
    limit: int,
    before_seq: int | None,
    container_id: str | None = None,
    owner_uid: int | None = None,
    task: str | None = None,
) -> SelectOfScalar[Job]:
    """One page of jobs by keyset (seq below the cursor), never by offset: any page costs what the first does."""
    query = select(Job).order_by(col(Job.seq).desc()).limit(limit)
    if statuses is not None and len(statuses) == 1 and owner_uid is None and task is None and container_id is None:
        # Without statistics SQLite walks the rowid down from a cursor and tests each row's status:
        # for a rare status, every job below the cursor. The (status, seq) index starts at the cursor instead.
        query = query.with_hint(Job, "INDEXED BY ix_job_status_seq", "sqlite")
    if statuses:
        query = query.where(col(Job.status).in_(statuses))
    if before_seq is not None:
        query = query.where(col(Job.seq) < before_seq)
    if container_id is not None:
        # autoescape: a `%` or `_` in what the caller typed is that character, never a LIKE wildcard.
        query = query.where(col(Job.container_id).startswith(container_id, autoescape=True))
    if owner_uid is not None:
        query = query.where(col(Job.owner_uid) == owner_uid)
    if task is not None:
        query = query.where(col(Job.task) == task)
    return query

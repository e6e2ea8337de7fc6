"""PipelineStore: the `pipeline` table. A pipeline's steps are jobs (JobStore.of_pipeline)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from tao_server.jobs.store import JobStore
from tao_server.models import Pipeline


class PipelineStore:
    def __init__(self, jobs: JobStore) -> None:
        self._jobs = jobs

    def insert(self, pipeline: Pipeline) -> None:
        with self._jobs.writing(), Session(self._jobs.engine, expire_on_commit=False) as session:
            session.add(pipeline)
            session.commit()

    def find(self, pipeline_id: str) -> Pipeline | None:
        with Session(self._jobs.engine, expire_on_commit=False) as session:
            return session.get(Pipeline, pipeline_id)

    def newest(self, owner_uid: int | None, limit: int) -> list[Pipeline]:
        """The newest pipelines: `owner_uid`'s, or everyone's for None."""
        query = select(Pipeline).order_by(col(Pipeline.created_at).desc()).limit(limit)
        if owner_uid is not None:
            query = query.where(col(Pipeline.owner_uid) == owner_uid)
        with Session(self._jobs.engine, expire_on_commit=False) as session:
            return list(session.exec(query).all())

"""Reads and writes of the sweep table; writes go through the job table's writer (one at a time, StorageFull as there)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from tao_server.jobs.store import JobStore
from tao_server.sweeps.sweep_models import Sweep, SweepState


class SweepStore:
    def __init__(self, jobs: JobStore) -> None:
        self._jobs = jobs
        self._engine = jobs.engine

    def insert(self, sweep: Sweep) -> Sweep:
        with self._jobs.writing(), Session(self._engine, expire_on_commit=False) as session:
            session.add(sweep)
            session.commit()
        return sweep

    def find(self, sweep_id: str) -> Sweep | None:
        with Session(self._engine, expire_on_commit=False) as session:
            return session.get(Sweep, sweep_id)

    def listing(self, owner_uid: int | None, everyone: bool) -> list[Sweep]:
        """Newest first: the owner's, or every sweep."""
        query = select(Sweep).order_by(col(Sweep.created_at).desc())
        if not everyone:
            query = query.where(col(Sweep.owner_uid) == owner_uid)
        with Session(self._engine, expire_on_commit=False) as session:
            return list(session.exec(query).all())

    def active(self) -> list[Sweep]:
        with Session(self._engine, expire_on_commit=False) as session:
            return list(session.exec(select(Sweep).where(col(Sweep.state) == SweepState.running)).all())

    def update(self, sweep_id: str, **fields: Any) -> None:
        with self._jobs.writing(), Session(self._engine) as session:
            session.exec(update(Sweep).where(col(Sweep.id) == sweep_id).values(**fields))
            session.commit()

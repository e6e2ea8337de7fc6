"""The outbox: every notification not yet delivered or given up, in the daemon's database.

Deliveries are added where a job starts or ends (outbox_observer.py) and taken by the sender (sender.py)
when due; each try's outcome is written before the next is planned, so a restart loses none.
Writes go through the job store's single writer (store.py): a full disk is StorageFull.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from sqlalchemy import delete, insert, update
from sqlmodel import Session, col, select

from tao_server.jobs.store import JobStore
from tao_server.notify.notify_models import Delivery, DeliveryState

_INSERT_ONCE = insert(Delivery.__table__).prefix_with("OR IGNORE")  # type: ignore[attr-defined]
_COLUMNS = [column.name for column in Delivery.__table__.columns]  # type: ignore[attr-defined]


class Outbox:
    def __init__(self, store: JobStore) -> None:
        self._store = store
        self._engine = store.engine

    def add(self, deliveries: list[Delivery]) -> int:
        """Keep the deliveries, but those already kept for the same job, attempt, event and URL; how many were new."""
        if not deliveries:
            return 0
        with self._store.writing(), self._engine.begin() as connection:
            added = 0
            for delivery in deliveries:
                added += connection.execute(_INSERT_ONCE, {name: getattr(delivery, name) for name in _COLUMNS}).rowcount
        return added

    def due(self, now: float, limit: int, busy: Collection[str]) -> list[Delivery]:
        """Up to `limit` pending deliveries due by `now`, the longest waiting first, leaving out those being sent."""
        query = (
            select(Delivery)
            .where(col(Delivery.state) == DeliveryState.pending, col(Delivery.next_try_at) <= now, col(Delivery.id).not_in(list(busy)))
            .order_by(col(Delivery.next_try_at))
            .limit(limit)
        )
        with Session(self._engine, expire_on_commit=False) as session:
            return list(session.exec(query).all())

    def next_due(self, busy: Collection[str]) -> float | None:
        """When the next pending delivery that is not being sent is due; None when there is none."""
        query = (
            select(Delivery.next_try_at)
            .where(col(Delivery.state) == DeliveryState.pending, col(Delivery.id).not_in(list(busy)))
            .order_by(col(Delivery.next_try_at))
            .limit(1)
        )
        with Session(self._engine) as session:
            return session.exec(query).first()

    def record(self, delivery_id: str, **fields: object) -> None:
        """A try's outcome: its count, state, result and (pending) when the next is due."""
        with self._store.writing(), Session(self._engine) as session:
            session.exec(update(Delivery).where(col(Delivery.id) == delivery_id).values(**fields))
            session.commit()

    def reschedule(self, next_try: Callable[[Delivery], float]) -> None:
        """At start-up: bring each pending delivery's next try forward to `next_try(delivery)` when that is sooner.

        A delivery planned under longer delays (settings since changed) is then tried as the settings in force say.
        """
        with Session(self._engine, expire_on_commit=False) as session:
            waiting = list(session.exec(select(Delivery).where(col(Delivery.state) == DeliveryState.pending, col(Delivery.tries) > 0)))
        for delivery in waiting:
            sooner = next_try(delivery)
            if sooner < delivery.next_try_at:
                self.record(delivery.id, next_try_at=sooner)

    def prune(self, before: float) -> int:
        """Forget deliveries settled (delivered or given up) that were made before `before`; how many.

        The job's events keep what became of each; the outbox only needs what is still to be sent.
        """
        settled = delete(Delivery).where(col(Delivery.state) != DeliveryState.pending, col(Delivery.created_at) < before)
        with self._store.writing(), self._engine.begin() as connection:
            return int(connection.execute(settled).rowcount)

    def pending(self, job_id: str) -> bool:
        """Whether a delivery of the job is still pending."""
        query = select(Delivery.id).where(col(Delivery.job_id) == job_id, col(Delivery.state) == DeliveryState.pending).limit(1)
        with Session(self._engine) as session:
            return session.exec(query).first() is not None

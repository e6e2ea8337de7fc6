"""A job's metric series and its progress, in the database: written a batch at a time, read whole.

Each series is named by its key (`loss`, `mAP`; later `gpu_utilization`) and holds one point per
(epoch, step): a value written again for the same epoch and step replaces the first, so reading
a line twice (after a restart, or a file rewritten from the top) adds nothing. A series sampled
over time rather than per epoch (GPU use) stores each sample as its own step: `sample`.

Storage per job is bounded: at most MAX_POINTS points a series (past that, every other point
of all but the newest KEEP_RECENT goes: a chart keeps the whole run, older parts at a coarser
grain) and at most MAX_SERIES series (jobs/progress.py keeps the count).

The points, the job's progress and the follower's cursor are written in one transaction, so a
daemon that stops between two reads resumes with its cursor just past the last points it kept:
no point is lost or written twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.sqlite import insert

from tao_server.jobs.store import JobStore
from tao_server.models import Job, MetricPoint, MetricRow, ProgressCursor

MAX_POINTS = 1000
KEEP_RECENT = 250
MAX_SERIES = 64
NONE = -1  # an epoch or step the task did not give: the unique index would never match NULLs

_POINTS = MetricRow.__table__  # type: ignore[attr-defined]
_CURSORS = ProgressCursor.__table__  # type: ignore[attr-defined]
_UPSERT = insert(_POINTS)
_UPSERT = _UPSERT.on_conflict_do_update(
    index_elements=["job_id", "series", "epoch", "step"], set_={"value": _UPSERT.excluded.value, "time": _UPSERT.excluded.time}
)
# Every other point among the oldest of one series: the first stays, so a chart starts where the run did.
_THIN = text(
    "DELETE FROM job_metric WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM job_metric "
    "WHERE job_id = :job AND series = :series ORDER BY id LIMIT :older) WHERE n % 2 = 0)"
)


@dataclass(frozen=True)
class Point:
    """One value of a series; `time` in seconds since the epoch."""

    series: str
    epoch: int | None
    step: int | None
    value: float
    time: float


class MetricStore:
    def __init__(self, jobs: JobStore) -> None:
        self._jobs = jobs
        self._engine = jobs.engine

    def cursor(self, job_id: str) -> dict[str, Any] | None:
        """The follower's saved state for the job; None when it was never followed."""
        with self._engine.connect() as connection:
            state = connection.execute(select(_CURSORS.c.state).where(_CURSORS.c.job_id == job_id)).scalar_one_or_none()
        return dict(state) if state is not None else None

    def begin(self, job_id: str, state: dict[str, Any], unavailable: str | None) -> None:
        """The job is followed from now (its cursor saved), or says why it cannot be."""
        with self._jobs.writing(), self._engine.begin() as connection:
            connection.execute(insert(_CURSORS).values(job_id=job_id, state=state).on_conflict_do_nothing())
            connection.execute(update(Job).where(Job.id == job_id).values(progress_unavailable=unavailable))  # type: ignore[arg-type]

    def save(self, job_id: str, state: dict[str, Any], progress: dict[str, Any] | None, points: list[Point]) -> None:
        """The points read, the progress they make and the cursor past them: together or not at all."""
        with self._jobs.writing(), self._engine.begin() as connection:
            if points:
                connection.execute(_UPSERT, [_row(job_id, point) for point in points])
            if progress is not None:
                connection.execute(update(Job).where(Job.id == job_id).values(progress=progress))  # type: ignore[arg-type]
            connection.execute(update(_CURSORS).where(_CURSORS.c.job_id == job_id).values(state=state))
            for series in {point.series for point in points}:
                _thin(connection, job_id, series)

    def sample(self, job_id: str, series: str, value: float, at: float) -> None:
        """A value of a series sampled over time (GPU use), kept as the step of its millisecond."""
        point = Point(series, None, int(at * 1000), value, at)
        with self._jobs.writing(), self._engine.begin() as connection:
            connection.execute(_UPSERT, [_row(job_id, point)])
            _thin(connection, job_id, series)

    def series(self, job_id: str) -> dict[str, list[MetricPoint]]:
        """Every series of the job, by name, each in the order its points were first written."""
        query = (
            select(_POINTS.c.series, _POINTS.c.epoch, _POINTS.c.step, _POINTS.c.value, _POINTS.c.time)
            .where(_POINTS.c.job_id == job_id)
            .order_by(_POINTS.c.series, _POINTS.c.id)
        )
        found: dict[str, list[MetricPoint]] = {}
        with self._engine.connect() as connection:
            for series, epoch, step, value, at in connection.execute(query):
                found.setdefault(series, []).append(
                    MetricPoint(
                        epoch=None if epoch == NONE else epoch,
                        step=None if step == NONE else step,
                        value=value,
                        time=datetime.fromtimestamp(at, UTC),
                    )
                )
        return found

    def names(self, job_id: str) -> set[str]:
        with self._engine.connect() as connection:
            return set(connection.execute(select(_POINTS.c.series).where(_POINTS.c.job_id == job_id).distinct()).scalars())

    def count(self, job_id: str, series: str) -> int:
        with self._engine.connect() as connection:
            return int(connection.execute(_count_query(job_id, series)).scalar_one())


def _row(job_id: str, point: Point) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "series": point.series,
        "epoch": NONE if point.epoch is None else point.epoch,
        "step": NONE if point.step is None else point.step,
        "value": point.value,
        "time": point.time,
    }


def _count_query(job_id: str, series: str) -> Any:
    return select(func.count()).select_from(_POINTS).where(_POINTS.c.job_id == job_id, _POINTS.c.series == series)


def _thin(connection: Any, job_id: str, series: str) -> None:
    """Bring the series back under MAX_POINTS: every other point of all but its newest KEEP_RECENT goes."""
    count = int(connection.execute(_count_query(job_id, series)).scalar_one())
    if count > MAX_POINTS:
        connection.execute(_THIN, {"job": job_id, "series": series, "older": count - KEEP_RECENT})

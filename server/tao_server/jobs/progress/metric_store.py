"""A job's metric series and its progress, in the database: written a batch at a time, read whole.

Each series is named by its key (`loss`, `mAP`) and holds one point per (epoch, step): a value
written again for the same epoch and step replaces the first, so reading a line twice (after a
restart, or a file rewritten from the top) adds nothing. A series sampled over time rather than
per epoch (GPU use: SAMPLED, whose names a status file cannot use) stores each sample as the step
of its millisecond (`sample`), and is shown with neither epoch nor step, only its time.

Storage per job is bounded: at most MAX_POINTS points a series (past that, every other point
of all but the newest KEEP_RECENT goes: a chart keeps the whole run, older parts at a coarser
grain) and at most MAX_SERIES series (jobs/progress/tracker.py keeps the count).

The points, the job's progress and the follower's cursor are written in one transaction, so a
daemon that stops between two reads resumes with its cursor just past the last points it kept:
no point is lost or written twice.
"""

from __future__ import annotations

import threading
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
# Series the daemon samples itself (tao_server.observability): the mean utilisation of a job's GPUs (%), their memory used (MiB).
GPU_UTILIZATION = "gpu_utilization"
GPU_MEMORY = "gpu_memory_used"
SAMPLED = (GPU_UTILIZATION, GPU_MEMORY)

_POINTS = MetricRow.__table__  # type: ignore[attr-defined]
_CURSORS = ProgressCursor.__table__  # type: ignore[attr-defined]
# Written as SQL for the driver's executemany: at a thousand lines a second, compiling the statement for each batch costs more than the write.
_UPSERT = (
    "INSERT INTO job_metric (job_id, series, epoch, step, value, time) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (job_id, series, epoch, step) DO UPDATE SET value = excluded.value, time = excluded.time"
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
        # About how many points each series of a followed job holds (never fewer than it does): counted
        # again only when this passes MAX_POINTS, not on every batch.
        self._sizes: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

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
            self._write(connection, job_id, points)
            if progress is not None:
                connection.execute(update(Job).where(Job.id == job_id).values(progress=progress))  # type: ignore[arg-type]
            connection.execute(update(_CURSORS).where(_CURSORS.c.job_id == job_id).values(state=state))

    def sample(self, job_id: str, series: str, value: float, at: float) -> None:
        """A value of a series sampled over time (GPU use), kept as the step of its millisecond."""
        with self._jobs.writing(), self._engine.begin() as connection:
            self._write(connection, job_id, [Point(series, None, int(at * 1000), value, at)])

    def done(self, job_id: str) -> None:
        """The job is no longer written to: its series' sizes need not stay in memory."""
        with self._lock:
            for key in [key for key in self._sizes if key[0] == job_id]:
                del self._sizes[key]

    def _write(self, connection: Any, job_id: str, points: list[Point]) -> None:
        """Upsert the points, then thin each series they grew past MAX_POINTS."""
        if not points:
            return
        connection.exec_driver_sql(_UPSERT, [_row(job_id, point) for point in points])
        added: dict[str, int] = {}
        for point in points:
            added[point.series] = added.get(point.series, 0) + 1
        for series, count in added.items():
            with self._lock:
                known = self._sizes.get((job_id, series))
            size = _count(connection, job_id, series) if known is None else known + count
            if size > MAX_POINTS:
                size = _thin(connection, job_id, series)
            with self._lock:
                self._sizes[(job_id, series)] = size

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
                sampled = series in SAMPLED  # its step is only the sample's millisecond, which `time` says
                found.setdefault(series, []).append(
                    MetricPoint(
                        epoch=None if epoch == NONE else epoch,
                        step=None if step == NONE or sampled else step,
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


def _row(job_id: str, point: Point) -> tuple[Any, ...]:
    epoch = NONE if point.epoch is None else point.epoch
    return (job_id, point.series, epoch, NONE if point.step is None else point.step, point.value, point.time)


def _count_query(job_id: str, series: str) -> Any:
    return select(func.count()).select_from(_POINTS).where(_POINTS.c.job_id == job_id, _POINTS.c.series == series)


def _count(connection: Any, job_id: str, series: str) -> int:
    return int(connection.execute(_count_query(job_id, series)).scalar_one())


def _thin(connection: Any, job_id: str, series: str) -> int:
    """Bring the series back under MAX_POINTS: every other point of all but its newest KEEP_RECENT goes. Its size after."""
    count = _count(connection, job_id, series)
    if count <= MAX_POINTS:
        return count
    connection.execute(_THIN, {"job": job_id, "series": series, "older": count - KEEP_RECENT})
    return _count(connection, job_id, series)

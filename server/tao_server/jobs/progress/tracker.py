"""Training progress of running jobs, from TAO's status file: one thread follows them all.

The runner calls `follow(job)` just before a job's run starts, and `ended(job_id)` once the run
has ended, before its end is recorded: so a client that sees a job ended sees all its progress
too. A restarted daemon `resume`s the jobs it followed before the runner reconciles them.
Meanwhile a thread reads what each followed job's status files gained every INTERVAL seconds
(status_reader.py, beneath the job's mounts, never through a link, only files of the job's owner
for a user's job), folds the lines (progress_state.py) and saves the points, the progress and
the cursors in one transaction (metric_store.py). Its results dir is looked through again every
SCAN_INTERVAL seconds for a `status.json` one level below that was not there before (TAO 5 makes
`results/train/` as it starts), and every INTERVAL while none has been found in its first
EAGER_SCAN seconds.

What a metrics exporter needs is kept in memory (`ratios`: each running job's fraction and
owner); a series sampled beside the status file (GPU use, tao_server.observability) goes through
the same store (`MetricStore.sample`), as a series of the job, and `metrics` names it `sampled`.

The files found when the job starts are read from their size then: what a previous run wrote
there is not this job's. Nothing here can stop a job or a listing: whatever a file holds is
skipped and counted, and a failure of the follower is logged, never raised into the runner.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from tao_server.access import beneath
from tao_server.access.caller import owner_of
from tao_server.errors import StorageFull, UnsafeFile
from tao_server.jobs.events import EventLog
from tao_server.jobs.progress import status_reader
from tao_server.jobs.progress.metric_store import SAMPLED, MetricStore, Point
from tao_server.jobs.progress.progress_state import ProgressState
from tao_server.jobs.progress.status_lines import NotALine, parse
from tao_server.jobs.progress.status_locate import Place, Visibility, locate
from tao_server.jobs.progress.status_reader import FileCursor
from tao_server.models import Job, JobMetrics

log = logging.getLogger(__name__)

INTERVAL = 0.25
SCAN_INTERVAL = 2.0
EAGER_SCAN = 60.0  # for so long after it starts, a job with no status file found yet is looked for every INTERVAL
MAX_FILES = 8  # status files followed for one job


class Progress(Protocol):
    """What the runner tells the follower (jobs/runner/starting.py, ending.py)."""

    def follow(self, job: Job) -> None: ...

    def ended(self, job_id: str) -> None: ...


class _Unfollowed:
    """A runner built without a follower (some tests) tells no one."""

    def follow(self, job: Job) -> None:
        pass

    def ended(self, job_id: str) -> None:
        pass


NO_PROGRESS: Progress = _Unfollowed()


@dataclass(frozen=True)
class Ratio:
    """A running job's progress for a metrics exporter: its owner (None: the daemon's) and how far it is, 0..1."""

    owner_uid: int | None
    fraction: float


@dataclass
class _Followed:
    job_id: str
    file_owner: int | None  # whose its files must be; None: an admin's job, anyone's
    owner_uid: int | None  # whose job it is
    state: ProgressState
    lock: threading.Lock = field(default_factory=threading.Lock)
    scanned: float = 0.0
    since: float = field(default_factory=time.monotonic)
    ended: bool = False
    refused: bool = False  # the database refused its last save (a full disk): said once, tried again each read

    def due(self, final: bool) -> bool:
        """Whether its results dir is to be looked through for status files now."""
        now = time.monotonic()
        eager = not self.state.files and now - self.since < EAGER_SCAN
        return final or eager or now - self.scanned >= SCAN_INTERVAL


class ProgressTracker:
    def __init__(self, metrics: MetricStore, events: EventLog, visible: Visibility | None = None, interval: float = INTERVAL) -> None:
        """`visible`: where the backend runs jobs on other hosts, whether the daemon's host sees a mount as they do."""
        self._metrics = metrics
        self._events = events
        self._visible = visible
        self._interval = interval
        self._followed: dict[str, _Followed] = {}
        self._ratios: dict[str, Ratio] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def shutdown(self) -> None:
        self._stop.set()

    # -- what the runner calls ---------------------------------------------------------------------

    def follow(self, job: Job) -> None:
        """Follow the job's status file from now (or from where a previous daemon got to); never raises."""
        try:
            self._follow(job)
        except Exception:  # progress is a courtesy: a job never fails to start because of it
            log.exception("job %s: its progress cannot be followed", job.id)

    def resume(self, jobs: list[Job]) -> None:
        """After a restart, before the runner reconciles: follow again the active jobs that were followed."""
        for job in jobs:
            if self._metrics.cursor(job.id) is not None:
                self.follow(job)

    def ended(self, job_id: str) -> None:
        """The job's run has ended: read what its files gained one last time, then let them go; never raises."""
        with self._lock:
            followed = self._followed.pop(job_id, None)
            self._ratios.pop(job_id, None)
        if followed is None:
            return
        try:
            self._read(followed, final=True)
        except Exception:  # a job's end is recorded whatever its status file holds
            log.exception("job %s: the last read of its status file failed", job_id)
        finally:
            self._metrics.done(job_id)

    # -- what the API and a metrics exporter read --------------------------------------------------

    def ratios(self) -> dict[str, Ratio]:
        """How far each running job whose status file gives it is, and whose job it is: from memory, cheap enough for every scrape."""
        with self._lock:
            return dict(self._ratios)

    def metrics(self, job: Job) -> JobMetrics:
        """The job's series, the files followed and what was skipped in them (the caller may see the job)."""
        saved = self._metrics.cursor(job.id)
        state = ProgressState.from_json(saved) if saved is not None else ProgressState()
        series = self._metrics.series(job.id)
        return JobMetrics(
            series=series,
            files=[cursor.shown for cursor in state.files],
            skipped=state.skipped,
            unavailable=job.progress_unavailable,
            sampled=[name for name in SAMPLED if name in series],
        )

    # -- following ----------------------------------------------------------------------------------

    def _follow(self, job: Job) -> None:
        with self._lock:
            if job.id in self._followed:
                return
        file_owner = None if owner_of(job).admin else job.owner_uid
        saved = self._metrics.cursor(job.id)
        if saved is not None:
            state = ProgressState.from_json(saved)
            if not state.places:
                return  # it cannot be followed, and says why
        else:
            located = locate(job, file_owner, self._visible)
            if located is None:
                return  # no status file and no results dir: nothing to follow, nothing to say
            state = ProgressState(places=located.places)
            if located.places:
                self._discover(state, file_owner, baseline=True)
            self._metrics.begin(job.id, state.to_json(), located.unavailable)
            if not located.places:
                return
        progress = state.progress()
        with self._lock:
            self._followed[job.id] = _Followed(job.id, file_owner, job.owner_uid, state, scanned=time.monotonic())
            if progress is not None and progress["fraction"] is not None:
                self._ratios[job.id] = Ratio(job.owner_uid, progress["fraction"])

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                followed = list(self._followed.values())
            for each in followed:
                try:
                    self._read(each, final=False)
                except StorageFull as exc:
                    if not each.refused:
                        log.warning("job %s: its progress waits for the database: %s", each.job_id, exc.message)
                    each.refused = True
                except Exception:  # one job's follower failing must not stop the others'
                    log.exception("job %s: reading its status file failed", each.job_id)

    def _read(self, followed: _Followed, final: bool) -> None:
        """What the job's files gained since the last read, folded and saved."""
        with followed.lock:
            if followed.ended:
                return
            followed.ended = final
            state = followed.state
            before = state.to_json()  # what to go back to if the database refuses what this read found
            moved = False
            if followed.due(final):
                followed.scanned = time.monotonic()
                moved = self._discover(state, followed.file_owner, baseline=False)
            moved, points, events = _fold_new_lines(state, followed.file_owner, final, moved)
            if not moved:
                return
            progress = state.progress()
            try:
                self._metrics.save(followed.job_id, state.to_json(), progress, points)
            except BaseException:
                followed.state = ProgressState.from_json(before)  # the same lines are read again next time
                raise
            followed.refused = False
        for event in events:
            self._events.append(followed.job_id, "status", event)
        if progress is not None and progress["fraction"] is not None and not final:
            with self._lock:
                if followed.job_id in self._followed:
                    self._ratios[followed.job_id] = Ratio(followed.owner_uid, progress["fraction"])

    def _discover(self, state: ProgressState, owner: int | None, baseline: bool) -> bool:
        """Add a cursor for each status file now present that has none; True when one was added.

        `baseline`: the job is about to start, so each file found is read from its present end.
        """
        known = {cursor.shown for cursor in state.files}
        added = False
        for place in state.places:
            for shown, relative in _candidates(place):
                if shown in known or len(state.files) >= MAX_FILES:
                    continue
                cursor = FileCursor(shown, place.source, relative)
                if not _present(cursor):
                    continue
                if baseline:
                    status_reader.baseline(cursor, owner)
                state.files.append(cursor)
                known.add(shown)
                added = True
        return added


def _fold_new_lines(state: ProgressState, owner: int | None, final: bool, moved: bool) -> tuple[bool, list[Point], list[dict[str, Any]]]:
    """Read what each file gained and fold it into `state`: (whether anything moved, the points, the events)."""
    now, points, events = time.time(), [], []
    for cursor in state.files:
        reading = status_reader.read(cursor, owner, final)
        state.count(reading.skipped)
        moved = moved or reading.moved
        for raw in reading.lines:
            try:
                line = parse(raw)
            except NotALine as exc:
                state.count({exc.reason: 1})
                continue
            added, event = state.fold(line, now)
            points += added
            if event is not None:
                events.append(event)
    return moved, points, events


def _candidates(place: Place) -> list[tuple[str, str]]:
    """The status files a place may hold: itself, or the dir's and those one level below it."""
    if place.exact:
        return [place.file()]
    try:
        root = beneath.open_root(place.source)
    except (OSError, UnsafeFile):
        return []
    try:
        below = beneath.subdirectories(root, place.relative)
    except (OSError, UnsafeFile):
        below = []
    finally:
        os.close(root)
    return [place.file(), *(place.file(name) for name in below)]


def _present(cursor: FileCursor) -> bool:
    """Whether something is at the cursor's path: a file that may not be read (a link) is still followed, and counted."""
    try:
        root = beneath.open_root(cursor.source)
    except (OSError, UnsafeFile):
        return False
    try:
        return beneath.exists(root, cursor.relative)
    finally:
        os.close(root)

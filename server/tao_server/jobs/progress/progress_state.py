"""A job's progress folded from its status lines: the latest of each field, the points of each series, what was skipped.

Every numeric entry of a line's `graphical` and `kpi` is a point of the series named by its key,
at the epoch and step of the line (or, for a line that gives none, such as TAO's "metrics
generated" lines, the latest ones read). TAO's logger writes its current `kpi` and `graphical`
on every line until a task sets new ones: an object the same as the previous line's is that
repeat, not a new measurement, and adds no points. A change of the line's status or message
is an event for the job's timeline the first time it is written (a bounded number of them): per
epoch TAO alternates "Training loop in progress" and "Train metrics generated.", said once each.

`ProgressState` is saved as JSON beside the job (jobs/progress/metric_store.py) after each read, with the
cursors of its files, so a restarted daemon folds the next line exactly as this one would have.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from tao_server.jobs.progress.metric_store import MAX_SERIES, SAMPLED, Point
from tao_server.jobs.progress.status_lines import StatusLine, digest
from tao_server.jobs.progress.status_locate import Place
from tao_server.jobs.progress.status_reader import FileCursor

MAX_EVENTS = 100  # status messages told as job events, each once; a task that writes a new one each line is not a log
_COUNTS = ("epoch", "max_epoch", "step", "max_step")


@dataclass
class ProgressState:
    places: list[Place] = field(default_factory=list)
    files: list[FileCursor] = field(default_factory=list)
    epoch: int | None = None
    max_epoch: int | None = None
    step: int | None = None
    max_step: int | None = None
    eta_seconds: float | None = None
    eta_at: float | None = None  # when the task gave that estimate
    status: str | None = None
    message: str | None = None
    kpi: dict[str, float] = field(default_factory=dict)
    updated_at: float | None = None  # None: no line has said anything yet
    series: list[str] = field(default_factory=list)
    written: dict[str, str] = field(default_factory=dict)  # the digests of the last kpi and graphical objects, as saved
    _last: dict[str, object] = field(default_factory=dict, repr=False)  # those objects, since this daemon read them
    said: list[str] = field(default_factory=list)  # a digest of each (status, message) told as an event
    skipped: dict[str, int] = field(default_factory=dict)

    def count(self, skipped: dict[str, int]) -> None:
        for reason, number in skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + number

    def fold(self, line: StatusLine, now: float) -> tuple[list[Point], dict[str, Any] | None]:
        """Take in one line: the points it adds, and the event it makes (a new status or message), if any."""
        self.count(line.skipped)
        for name in _COUNTS:
            if (value := getattr(line, name)) is not None:
                setattr(self, name, value)
        if line.eta_seconds is not None:
            self.eta_seconds, self.eta_at = line.eta_seconds, now
        self.status = line.status or self.status
        self.message = line.message or self.message
        points = self._points(line, now)
        if line.written or any(getattr(line, name) is not None for name in (*_COUNTS, "eta_seconds", "status", "message")):
            self.updated_at = now
        return points, self._event(line)

    def _points(self, line: StatusLine, now: float) -> list[Point]:
        points: dict[str, Point] = {}  # by key: a value in both `graphical` and `kpi` is one point
        for kind in ("graphical", "kpi"):
            if kind not in line.written or self._repeated(kind, line.written[kind]):
                continue  # none, or the logger repeating the last one
            for key, value in getattr(line, kind).items():
                if key in SAMPLED:  # the daemon's own GPU series: a status file's value would mix with its samples
                    self.count({"reserved_key": 1})
                    continue
                if key not in self.series:
                    if len(self.series) >= MAX_SERIES:
                        self.count({"too_many_series": 1})
                        continue
                    self.series.append(key)
                if kind == "kpi":
                    self.kpi[key] = value
                points[key] = Point(key, self.epoch, self.step, value, now)
        return list(points.values())

    def _repeated(self, kind: str, written: object) -> bool:
        """Whether `written` is the last `kind` object again (compared whole; by digest across a restart)."""
        if kind in self._last:
            repeated = written == self._last[kind]
        else:
            repeated = kind in self.written and digest(written) == self.written[kind]
        self._last[kind] = written
        return repeated

    def _event(self, line: StatusLine) -> dict[str, Any] | None:
        if line.status is None and line.message is None:
            return None
        said = digest([line.status, line.message])
        if said in self.said or len(self.said) >= MAX_EVENTS:
            return None
        self.said.append(said)
        return {"status": line.status, "message": line.message}

    def progress(self) -> dict[str, Any] | None:
        """The job's progress as its row keeps it (JobProgress's fields, and `eta_at`); None before any line said anything."""
        if self.updated_at is None:
            return None
        return {
            "epoch": self.epoch,
            "max_epoch": self.max_epoch,
            "step": self.step,
            "max_step": self.max_step,
            "fraction": fraction(self.epoch, self.max_epoch, self.step, self.max_step),
            "eta_seconds": self.eta_seconds,
            "eta_at": self.eta_at,
            "status": self.status,
            "message": self.message,
            "kpi": dict(self.kpi) or None,
            "updated_at": self.updated_at,
        }

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__ if name not in ("places", "files", "_last")}
        data["written"] = {**self.written, **{kind: digest(written) for kind, written in self._last.items()}}
        data["places"] = [vars(place) for place in self.places]
        data["files"] = [cursor.to_json() for cursor in self.files]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProgressState:
        state = cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data and name not in ("places", "files", "_last")})
        state.places = [Place(**place) for place in data.get("places", [])]
        state.files = [FileCursor.from_json(cursor) for cursor in data.get("files", [])]
        return state


def fraction(epoch: int | None, max_epoch: int | None, step: int | None, max_step: int | None) -> float | None:
    """How far the run is, 0..1: from steps when the task gives them, else from epochs."""
    if step is not None and max_step:
        done = step / max_step
    elif epoch is not None and max_epoch:
        done = epoch / max_epoch
    else:
        return None
    return round(min(1.0, max(0.0, done)), 4)


def shown(progress: dict[str, Any], ended: bool, now: float | None = None) -> dict[str, Any]:
    """The progress a job's row keeps, as the API shows it now: the ETA less the time since the task gave it, none once it ended."""
    shown = {name: value for name, value in progress.items() if name != "eta_at"}
    eta, at = progress.get("eta_seconds"), progress.get("eta_at")
    if ended or eta is None:
        shown["eta_seconds"] = None
    elif at is not None:
        shown["eta_seconds"] = round(max(0.0, eta - ((now or time.time()) - at)), 1)
    return shown

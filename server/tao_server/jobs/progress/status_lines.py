"""One line of TAO's status file, read as TAO's status logger writes it, and nothing else taken on trust.

TAO's tasks append one JSON object a line to `status.json` in their results dir
(nvidia_tao_pytorch/core/loggers/api_logging.py, and the TensorFlow backends' status_logging):

    {"date": "3/14/2026", "time": "9:5:3", "status": "RUNNING", "verbosity": "INFO",
     "message": "Training loop in progress", "epoch": 12, "max_epoch": 80, "step": 1200,
     "max_step": 8000, "time_per_epoch": "0:00:31.250000", "time_per_step": "0:00:00.312500",
     "eta": "0:35:25.000000", "graphical": {"loss": 0.71, "learning_rate": 0.0005},
     "kpi": {"mAP": 0.734}, "categorical": {...}}

`status` is STARTED, RUNNING, SUCCESS, FAILURE or SKIPPED; `eta` and the times are Python's
`str(timedelta)` ("H:MM:SS[.ffffff]", "1 day, H:MM:SS"); the TensorFlow 1 backend writes the
values of `graphical` and `kpi` as strings ("0.71"). Every field is optional. The file lives
in a directory its job's user controls, so whatever a line holds is checked: a line that is
not a JSON object is skipped, and so is each field of the wrong type, each value that is not a
finite number (Python's json writes a NaN loss as NaN), each count past 2**53 and each key too
long to name a series. `parse` says what it skipped, by reason, so the follower can count it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field

STATUSES = frozenset({"STARTED", "RUNNING", "SUCCESS", "FAILURE", "SKIPPED"})
MAX_COUNT = 2**53  # epochs and steps: past this a float no longer holds every integer
MAX_VALUE = 1e300  # a metric past this is noise (or an attack on whoever plots it)
MAX_ETA = 10 * 365 * 86400.0
MAX_KEY = 64  # characters in a series' name
MAX_ENTRIES = 256  # entries of `kpi` or `graphical` read from one line
MAX_MESSAGE = 1000  # characters of `message` kept
MAX_NUMBER_TEXT = 64  # characters of a number written as a string ("0.71")
_ETA = re.compile(r"(?:(-?\d{1,7}) days?, )?(\d{1,9}):([0-5]\d):([0-5]\d(?:\.\d{1,9})?)")
# Keys a task may put in `kpi` that say where its values belong rather than being values (some TAO
# PyTorch tasks add the epoch to their KPIs).
_CONTEXT_KEYS = ("epoch", "step")


@dataclass
class StatusLine:
    """What one line says, each field None (or empty) where it says nothing usable."""

    epoch: int | None = None
    max_epoch: int | None = None
    step: int | None = None
    max_step: int | None = None
    eta_seconds: float | None = None
    status: str | None = None
    message: str | None = None
    kpi: dict[str, float] = field(default_factory=dict)
    graphical: dict[str, float] = field(default_factory=dict)
    # The `kpi` and `graphical` objects as written, by kind (absent: the line has none): TAO's logger writes
    # its last ones on every line until a task replaces them, and a repeat is no new measurement.
    written: dict[str, object] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


class NotALine(ValueError):
    """A line that is not a JSON object; `reason` names why (invalid_json, not_an_object)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse(raw: bytes) -> StatusLine:
    """The line (without its newline) as a StatusLine; NotALine when it is not a JSON object at all."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError, bad UTF-8, a 5000-digit integer, nesting a thousand deep
        raise NotALine("invalid_json") from None
    if not isinstance(data, dict):
        raise NotALine("not_an_object")
    line = StatusLine()
    for name in ("epoch", "max_epoch", "step", "max_step"):
        if name in data:
            setattr(line, name, _count(data[name], line))
    if "eta" in data:
        line.eta_seconds = _eta(data["eta"], line)
    line.status = _status(data.get("status"), line)
    line.message = _message(data.get("message"), line)
    for kind in ("kpi", "graphical"):
        if kind in data:
            values = _numbers(data[kind], line, context=kind == "kpi")
            setattr(line, kind, values)
            line.written[kind] = data[kind]
    return line


def eta_seconds(text: str) -> float | None:
    """Seconds from Python's `str(timedelta)` ("0:41:10.5", "2 days, 3:04:05"); None when it is not one."""
    found = _ETA.fullmatch(text.strip())
    if found is None:
        return None
    days, hours, minutes, seconds = found.groups()
    total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return max(0.0, total)


def _count(value: object, line: StatusLine) -> int | None:
    """An epoch or step count: a whole number from 0 to 2**53 (3.0 counts; True, -1, 1e300 and "3" do not)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT:
        return value
    line.skip("bad_count" if value is not None else "null_value")
    return None


def _eta(value: object, line: StatusLine) -> float | None:
    seconds: float | None = None
    if isinstance(value, str) and len(value) <= MAX_NUMBER_TEXT:
        seconds = eta_seconds(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        seconds = max(0.0, float(value))
    if seconds is None or seconds > MAX_ETA:
        line.skip("bad_eta")
        return None
    return seconds


def _status(value: object, line: StatusLine) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and value in STATUSES:
        return value
    line.skip("bad_status")
    return None


def _message(value: object, line: StatusLine) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        line.skip("bad_message")
        return None
    return printable(value)[:MAX_MESSAGE]


def _numbers(values: object, line: StatusLine, context: bool) -> dict[str, float]:
    """The numeric entries of a `kpi` or `graphical` object, by key; what is not one is counted and left out.

    `context`: the object may carry the epoch or step its values belong to (TAO's PyTorch tasks put
    the epoch in their KPIs): taken as the line's own when the line gives none.
    """
    if not isinstance(values, dict):
        line.skip("bad_object")
        return {}
    found: dict[str, float] = {}
    for index, (key, value) in enumerate(values.items()):
        if index >= MAX_ENTRIES:
            line.skip("too_many_entries")
            break
        if context and key in _CONTEXT_KEYS:
            if getattr(line, key) is None:
                setattr(line, key, _count(value, line))
            continue
        name = printable(key).strip()
        if not name or len(name) > MAX_KEY:
            line.skip("bad_key")
            continue
        number = _number(value)
        if isinstance(number, str):
            line.skip(number)
            continue
        found[name] = number
    return found


def _number(value: object) -> float | str:
    """A finite number, or the string of one (as TensorFlow 1 writes them); else why not: not_a_number, not_finite, too_large."""
    if isinstance(value, str) and len(value) <= MAX_NUMBER_TEXT:
        try:
            value = float(value)
        except ValueError:
            return "not_a_number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "not_a_number"
    if isinstance(value, float) and not math.isfinite(value):
        return "not_finite"
    if abs(value) > MAX_VALUE:
        return "too_large"
    return float(value)


def digest(value: object) -> str:
    """A short digest of a JSON value as written: what a restarted daemon remembers of the last `kpi` and `graphical`."""
    return hashlib.blake2b(json.dumps(value, sort_keys=True).encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def printable(text: str) -> str:
    """`text` without control characters or lone surrogates (which no JSON answer may carry)."""
    if text.isprintable() and text.isascii():
        return text
    cleaned = "".join(char if char.isprintable() or char == " " else " " for char in text)
    return cleaned.encode("utf-8", "replace").decode("utf-8")

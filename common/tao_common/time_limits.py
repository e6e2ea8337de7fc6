"""Job time limits in the forms Slurm takes (`--time`), as seconds, and back.

    MM   MM:SS   HH:MM:SS   D-HH   D-HH:MM   D-HH:MM:SS

Slurm reads a bare number as minutes; so does this. "0", "infinite" and "unlimited" are refused
rather than read as "no limit": a job without a limit simply gives no --time.
"""

from __future__ import annotations

import re

_FORM = re.compile(r"^(?:(?P<days>\d+)-(?P<dh>\d+)(?::(?P<dm>\d+)(?::(?P<ds>\d+))?)?|(?P<a>\d+)(?::(?P<b>\d+)(?::(?P<c>\d+))?)?)$")
FORMS = "MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"


class NotATimeLimit(ValueError):
    """`text` is none of the forms, or no time at all; the message says which, as `tao` and the daemon show it."""


def parse(text: str) -> int:
    """Seconds in `text`; NotATimeLimit naming the forms when it is none of them, or zero."""
    match = _FORM.match(text.strip())
    if match is None:
        raise NotATimeLimit(f"--time {text!r} is not a time limit; give it as Slurm does: {FORMS}")
    parts = {key: int(value) for key, value in match.groupdict().items() if value is not None}
    if "days" in parts:
        seconds = parts["days"] * 86400 + parts["dh"] * 3600 + parts.get("dm", 0) * 60 + parts.get("ds", 0)
    elif "c" in parts:
        seconds = parts["a"] * 3600 + parts["b"] * 60 + parts["c"]
    else:
        seconds = parts["a"] * 60 + parts.get("b", 0)
    if seconds <= 0:
        raise NotATimeLimit(f"--time {text!r} is no time at all; give a limit above zero, or no --time for none")
    return seconds


def slurm_form(seconds: int) -> str:
    """`seconds` as sbatch --time takes it (D-HH:MM:SS), rounded up to whole minutes as Slurm counts them."""
    minutes = -(-seconds // 60)
    days, minutes = divmod(minutes, 1440)
    return f"{days}-{minutes // 60:02d}:{minutes % 60:02d}:00"


def shown(seconds: int) -> str:
    """A limit as people read it: "1-12:00:00", "2:00:00", "0:30:00"."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    clock = f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{days}-{clock}" if days else clock

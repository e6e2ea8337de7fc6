"""A job's training progress in the words people read: the PROGRESS column of `tao list`, the dashboard's rows.

The daemon serves progress as JSON (`JobProgress`: epoch, max_epoch, step, max_step, fraction,
eta_seconds, ...); both sides turn it into the same text here.
"""

from __future__ import annotations

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


def progress_text(progress: Mapping[str, Any] | None) -> str:
    """ "12/80 15% ETA 0:41:10": the epoch of how many, how far, and the time left; "" with no progress."""
    if not progress:
        return ""
    parts = []
    epoch, max_epoch = progress.get("epoch"), progress.get("max_epoch")
    if epoch is not None:
        parts.append(f"{epoch}/{max_epoch}" if max_epoch is not None else f"epoch {epoch}")
    elif progress.get("step") is not None:
        parts.append(f"step {progress['step']}" + (f"/{progress['max_step']}" if progress.get("max_step") is not None else ""))
    if progress.get("fraction") is not None:
        parts.append(f"{int(progress['fraction'] * 100)}%")
    if progress.get("eta_seconds") is not None:
        parts.append(f"ETA {clock(progress['eta_seconds'])}")
    return " ".join(parts)


def clock(seconds: float) -> str:
    """H:MM:SS, as TAO writes its ETA (days as hours: 26:00:00)."""
    whole = max(0, int(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"

"""JSON from clients, bounded in size and depth before anything else reads it.

Request bodies (routing.py) and the control frames of the session websockets (websocket_channel.py) are
parsed here and nowhere else. Python's decoder gives up on its own only about a thousand levels
deep, with a RecursionError, and a value it did take that deep breaks whatever walks it next
(validation, encoding it again to store it): so anything deeper than MAX_DEPTH is refused here,
with a message, and nothing deeper ever reaches the rest of the daemon.
"""

from __future__ import annotations

import json
import sys
from typing import Any

# Levels of arrays and objects inside each other: far above any request of this API (a job's
# launch config is 4 deep, and `tao` itself sends up to 100), far below where Python's decoder gives up.
MAX_DEPTH = 128


class UnreadableJson(ValueError):
    """Client input that is not JSON this daemon reads; `message` says why, `position` where (a character offset)."""

    def __init__(self, message: str, position: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


def parse(data: str | bytes, max_bytes: int | None = None) -> Any:
    """The value `data` holds; UnreadableJson when it is longer than `max_bytes`, not JSON, or nested too deeply."""
    if max_bytes is not None and (size := _size(data, max_bytes)) > max_bytes:
        raise UnreadableJson(f"{size} bytes, more than the {max_bytes} this daemon reads here")
    try:
        value = json.loads(data)
    except json.JSONDecodeError as exc:
        raise UnreadableJson(f"line {exc.lineno}, column {exc.colno}: {exc.msg}", exc.pos) from None
    except RecursionError:
        raise UnreadableJson(_too_deep()) from None
    except UnicodeDecodeError as exc:
        raise UnreadableJson(f"cannot be decoded as {exc.encoding} at byte {exc.start}: {exc.reason}", exc.start) from None
    except ValueError:  # the one other ValueError json.loads raises
        raise UnreadableJson(f"a number with more than {sys.get_int_max_str_digits()} digits") from None
    if _may_nest_deeper(data) and _deeper_than(value, MAX_DEPTH):
        raise UnreadableJson(_too_deep())
    return value


def _size(data: str | bytes, max_bytes: int) -> int:
    """Its length in bytes, as UTF-8 for text: text of more characters than `max_bytes` is too long whatever its encoding."""
    if isinstance(data, bytes) or len(data) > max_bytes:
        return len(data)
    return len(data.encode("utf-8", "surrogatepass"))


def _may_nest_deeper(data: str | bytes) -> bool:
    """Whether `data` has enough brackets to nest past MAX_DEPTH: counted in C, so most input is never walked."""
    if isinstance(data, str):
        return data.count("[") + data.count("{") > MAX_DEPTH
    return data.count(b"[") + data.count(b"{") > MAX_DEPTH


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects in `value` go more than `limit` levels deep (walked without recursion)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            pending.extend((inner, depth + 1) for inner in (item.values() if isinstance(item, dict) else item))
    return False


def _too_deep() -> str:
    return f"nested too deeply: arrays and objects more than {MAX_DEPTH} levels inside each other"

"""Reading the launcher config file (`~/.tao_mounts.json` or $LAUNCHER_MOUNTS).

The client only parses it; the daemon validates every field, so all clients share one set of rules.
"""

from __future__ import annotations

import json
import os
import sys

from tao_client import _paths
from tao_client._errors import LaunchConfigError

# Levels of arrays and objects inside each other: far above any real config (4), far below the
# thousand or so at which Python's JSON decoder and encoder give up, here or in the daemon.
MAX_DEPTH = 100


def read(path: str | os.PathLike[str] | None = None):  # type: ignore[no-untyped-def]
    """(parsed config or None when there is no file, the file's path)."""
    explicit = path is not None or bool(os.environ.get("LAUNCHER_MOUNTS"))
    path = os.path.expanduser(os.fspath(path)) if path is not None else _paths.mounts_file()
    try:
        with open(path, "rb") as file:
            content = file.read()
    except FileNotFoundError:
        if explicit:
            raise LaunchConfigError(f"{path}: launcher config file not found") from None
        return None, None
    except OSError as exc:
        raise LaunchConfigError(f"{path}: cannot read the launcher config: {exc}") from None
    return _expand_home(_parse(_decode(content, path), path)), path


def _decode(content: bytes, path: str) -> str:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = content.rfind(b"\n", 0, exc.start) + 1
        line = content.count(b"\n", 0, exc.start) + 1
        column = len(content[line_start : exc.start].decode("utf-8")) + 1  # in characters, as JSON errors count them
        raise LaunchConfigError(
            f"{path}: line {line}, column {column}: not valid UTF-8 (byte 0x{content[exc.start]:02x}); "
            "a launcher config is JSON, which is UTF-8: save the file as UTF-8"
        ) from None


def _parse(text: str, path: str):  # type: ignore[no-untyped-def]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LaunchConfigError(f"{path}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}") from None
    except RecursionError:  # the decoder recurses once per level, up to about a thousand
        raise _too_deep(path) from None
    except ValueError:  # an integer with more digits than Python converts (4300 by default)
        raise LaunchConfigError(
            f"{path}: invalid JSON: a number with more than {sys.get_int_max_str_digits()} digits; no launcher config value needs one"
        ) from None
    if _depth(data) > MAX_DEPTH:  # what the decoder took here could still be too deep to send, or for the daemon to read
        raise _too_deep(path)
    return data


def _depth(data) -> int:  # type: ignore[no-untyped-def]
    """How many arrays and objects deep `data` goes (walked without recursion)."""
    deepest, pending = 0, [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, depth)
            pending.extend((item, depth + 1) for item in (value.values() if isinstance(value, dict) else value))
    return deepest


def _too_deep(path: str) -> LaunchConfigError:
    return LaunchConfigError(
        f"{path}: nested too deeply: arrays and objects more than {MAX_DEPTH} levels inside each other; "
        "a launcher config nests objects 4 levels deep at most (DockerOptions.ulimits.NAME.soft)"
    )


def _expand_home(data):  # type: ignore[no-untyped-def]
    """`~` in mount sources means the home of the user running `tao`, as NVIDIA's launcher treats it."""
    if isinstance(data, dict) and isinstance(data.get("Mounts"), list):
        for mount in data["Mounts"]:
            if isinstance(mount, dict) and isinstance(mount.get("source"), str):
                mount["source"] = os.path.expanduser(mount["source"])
    return data

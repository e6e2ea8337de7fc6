"""Reading the launcher config file (`~/.tao_mounts.json` or $LAUNCHER_MOUNTS), and what a submission sends of it.

The client only parses it; the daemon validates every field, so all clients share one set of rules.
`for_submission` is the one place that turns `submit(launch_config=...)` into what is sent:
`tao`, `Client` and `AsyncClient` all go through it.
"""

from __future__ import annotations

import json
import os
import sys
import warnings

from tao_client._errors import LaunchConfigError, NoLaunchConfig
from tao_common import paths

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

# Levels of arrays and objects inside each other: far above any real config (4), far below the
# thousand or so at which Python's JSON decoder and encoder give up, here or in the daemon.
MAX_DEPTH = 100


def for_submission(given: Any = None, source: str | None = None) -> tuple[Any, str | None]:
    """(config, the name of where it came from) to send with a job, from `submit`'s `launch_config`.

    None: the user's file, as `tao` reads it (a missing default file is a NoLaunchConfig warning);
    False: none; a path: that file; a dict: that config; a (config, path) pair: what `read()` returned.
    `source` names a dict's origin in the daemon's messages.
    """
    if given is None:
        config, path = read()
        if path is None:  # said from here, so Python's warning filter says it once per process
            warnings.warn(NoLaunchConfig(_no_config_note()), stacklevel=1)
    elif given is False:
        config, path = None, None
    elif isinstance(given, (str, os.PathLike)):
        config, path = read(given)
    elif isinstance(given, tuple) and len(given) == 2:
        config, path = given
    elif isinstance(given, dict):
        import copy

        config, path = _expand_home(copy.deepcopy(given)), None  # `~` in a source as in a file; the caller's dict unchanged
    else:
        raise LaunchConfigError(
            f"launch_config: expected a dict, a path, what launch_config.read() returns, None (your "
            f"~/.tao_mounts.json) or False (none), got {type(given).__name__}"
        )
    named = source or path
    # Only named in messages: a path that is not UTF-8 goes as its readable form, which a request can carry.
    return config, named if named is None else _readable(named)


def _no_config_note() -> str:
    return (
        f"no launcher config at {paths.mounts_file()}: jobs run with no mounts, so they see none of this host's files; "
        "write one (Mounts, Envs, DockerOptions) or set LAUNCHER_MOUNTS"
    )


def _readable(path: str) -> str:
    """`path` as text any request carries: bytes that are not UTF-8 written as \\xNN."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        pass
    try:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that stands for no byte: only a caller in Python makes one
        return ascii(path)[1:-1]


def read(path: str | os.PathLike[str] | None = None):  # type: ignore[no-untyped-def]
    """(parsed config or None when there is no file, the file's path)."""
    explicit = path is not None or bool(os.environ.get("LAUNCHER_MOUNTS"))
    path = os.path.expanduser(os.fspath(path)) if path is not None else paths.mounts_file()
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

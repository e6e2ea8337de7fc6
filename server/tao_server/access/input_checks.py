"""What a request may hold before anything is stored: text the engine can carry, within limits.

The engine's API carries argv, environment and paths as JSON strings, that is UTF-8 text. A
string with a lone surrogate (what Python makes of bytes that are not UTF-8, such as a Latin-1
file name) could reach a container only changed, so it is refused here, naming where it is. NUL
bytes cannot reach a program at all. The limits keep one request from filling the daemon's
memory or database; they are generous for real use and set in Settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tao_server.errors import InvalidRequest

# Linux refuses a single argument or environment string longer than this (MAX_ARG_STRLEN).
MAX_ARG_STRLEN = 128 * 1024


@dataclass(frozen=True)
class RequestLimits:
    max_args: int = 4096
    max_arg_bytes: int = MAX_ARG_STRLEN
    max_envs: int = 1024
    max_mounts: int = 256


def check_text(value: str, field: str) -> None:
    """Refuse a string that is not UTF-8 text, or holds a NUL byte, naming `field`."""
    if "\0" in value:
        raise InvalidRequest(f"{field} contains a NUL byte, which no program can receive; remove it", field=field)
    if not is_text(value):
        raise InvalidRequest(
            f"{field}: {shown(value)} is not valid UTF-8 text; the engine carries it as UTF-8, so it could not reach the task "
            "unchanged: rename the file or pass the value another way",
            field=field,
        )


def check_nested_text(value: Any, field: str) -> None:
    """check_text on every string in a JSON value (keys too), naming each by its path."""
    if isinstance(value, str):
        check_text(value, field)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_nested_text(item, f"{field}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_nested_text(key, f"{field} (a key)")
            check_nested_text(item, f"{field}.{key}")


def check_args(args: list[str], limits: RequestLimits) -> None:
    if len(args) > limits.max_args:
        raise InvalidRequest(f"args: {len(args)} arguments; a job takes at most {limits.max_args} (TAO_MAX_ARGS)", field="args")
    for index, arg in enumerate(args):
        check_text(arg, f"args[{index}]")
        if len(arg.encode()) > limits.max_arg_bytes:
            raise InvalidRequest(
                f"args[{index}] is {len(arg.encode())} bytes; an argument may have at most {limits.max_arg_bytes} "
                "(TAO_MAX_ARG_BYTES; Linux refuses longer ones)",
                field=f"args[{index}]",
            )


def check_launch_config_size(raw: Any, limits: RequestLimits) -> None:
    """Count Mounts and Envs before any of them is looked at (a path check costs a system call)."""
    if not isinstance(raw, dict):
        return
    for key, most, setting in (("Mounts", limits.max_mounts, "TAO_MAX_MOUNTS"), ("Envs", limits.max_envs, "TAO_MAX_ENVS")):
        entries = raw.get(key)
        if isinstance(entries, list) and len(entries) > most:
            raise InvalidRequest(f"{key}: {len(entries)} entries; a job takes at most {most} ({setting})", field=key)


def is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(value: str, width: int = 60) -> str:
    """A readable form of a string that may hold undecodable bytes: 'caf\\xe9.jpg'."""
    raw = value.encode("utf-8", "surrogateescape") if _escaped_bytes_only(value) else value.encode("utf-8", "backslashreplace")
    text = repr(raw)[2:-1]
    return "'" + (text if len(text) <= width else text[: width - 3] + "...") + "'"


def scrubbed(value: Any) -> Any:
    """`value` with every lone surrogate replaced by U+FFFD, so that it can always be shown as JSON."""
    if isinstance(value, str):
        return value if is_text(value) else value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(value, list):
        return [scrubbed(item) for item in value]
    if isinstance(value, dict):
        return {scrubbed(key): scrubbed(item) for key, item in value.items()}
    return value


def _escaped_bytes_only(value: str) -> bool:
    """Whether every surrogate in `value` stands for one undecodable byte (Python's surrogateescape)."""
    return all("\udc80" <= char <= "\udcff" for char in value if "\ud800" <= char <= "\udfff")

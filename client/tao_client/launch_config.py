"""Reading the launcher config file (`~/.tao_mounts.json` or $LAUNCHER_MOUNTS).

The client only parses it; the daemon validates every field, so all clients share one set of rules.
"""

from __future__ import annotations

import json
import os

from tao_client import _paths
from tao_client._errors import LaunchConfigError


def read(path: str | os.PathLike[str] | None = None):  # type: ignore[no-untyped-def]
    """(parsed config or None when there is no file, the file's path)."""
    explicit = path is not None or bool(os.environ.get("LAUNCHER_MOUNTS"))
    path = os.path.expanduser(os.fspath(path)) if path is not None else _paths.mounts_file()
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        if explicit:
            raise LaunchConfigError(f"{path}: launcher config file not found") from None
        return None, None
    except (OSError, UnicodeDecodeError) as exc:
        raise LaunchConfigError(f"{path}: cannot read the launcher config: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LaunchConfigError(f"{path}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}") from None
    return _expand_home(data), path


def _expand_home(data):  # type: ignore[no-untyped-def]
    """`~` in mount sources means the home of the user running `tao`, as NVIDIA's launcher treats it."""
    if isinstance(data, dict) and isinstance(data.get("Mounts"), list):
        for mount in data["Mounts"]:
            if isinstance(mount, dict) and isinstance(mount.get("source"), str):
                mount["source"] = os.path.expanduser(mount["source"])
    return data

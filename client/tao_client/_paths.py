"""Default locations shared by the `tao` client and the daemon it may start.

Kept free of third-party imports: the CLI reads these on every start-up.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """Where the daemon keeps its database and job logs."""
    if configured := os.environ.get("TAO_DATA_DIR"):
        return Path(configured).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "tao"


def socket_path() -> Path:
    """The daemon's Unix socket when nothing else is configured."""
    if runtime := os.environ.get("XDG_RUNTIME_DIR"):
        return Path(runtime) / "tao" / "tao.sock"
    return Path.home() / ".tao" / "run" / "tao.sock"


def mounts_file() -> Path:
    """The launcher config file (`Mounts`, `Envs`, `DockerOptions`), as NVIDIA's launcher names it."""
    return Path(os.environ.get("LAUNCHER_MOUNTS") or Path.home() / ".tao_mounts.json").expanduser()


def user_manifest() -> Path:
    """The user's task manifest override, in NVIDIA's launcher config format."""
    return Path.home() / ".tao" / "config.json"

"""Default locations shared by the `tao` client and the daemon (its own, or one `tao` starts).

Plain strings and os.path: the CLI reads these on every start-up, and pathlib costs an import.
"""

from __future__ import annotations

import os


def data_dir() -> str:
    """Where the daemon keeps its database and job logs."""
    if configured := os.environ.get("TAO_DATA_DIR"):
        return os.path.expanduser(configured)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "tao")


def socket_path() -> str:
    """The daemon's Unix socket when nothing else is configured."""
    if runtime := os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(runtime, "tao", "tao.sock")
    return os.path.join(os.path.expanduser("~"), ".tao", "run", "tao.sock")


def runtime_dir() -> str:
    """This user's own runtime directory for `tao`: where the default socket lives (private, 0700)."""
    return os.path.dirname(socket_path())


def state_dir() -> str:
    """Where `tao` keeps what it remembers between runs for this user (which notes it has said)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "tao")


def mounts_file() -> str:
    """The launcher config file (`Mounts`, `Envs`, `DockerOptions`), as NVIDIA's launcher names it."""
    return os.path.expanduser(os.environ.get("LAUNCHER_MOUNTS") or os.path.join("~", ".tao_mounts.json"))


def user_manifest() -> str:
    """The user's task manifest override, in NVIDIA's launcher config format."""
    return os.path.join(os.path.expanduser("~"), ".tao", "config.json")

"""What every `tao` command shares: exit codes, error output, and the client it talks through."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from tao_client.client import Client

# As `docker run`: the launcher or engine failed (125), the entrypoint cannot run (126) or is missing (127).
EXIT_LAUNCHER = 125
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


@dataclass
class LauncherOptions:
    """Options given before the task or command."""

    host: str | None = None
    detach: bool = False
    gpus: str = "auto"
    gpu_indices: list[str] | None = None
    job_id: str | None = None
    mounts: Path | None = None


class UsageError(Exception):
    pass


def connect(options: LauncherOptions) -> Client:
    from tao_client.client import Client

    return Client(options.host)


def error(message: str) -> None:
    print(f"tao: error: {message}", file=sys.stderr)


def fail(message: str, code: int = EXIT_LAUNCHER) -> NoReturn:
    error(message)
    sys.exit(code)

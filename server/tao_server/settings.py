"""The daemon's settings: read once from flags and `TAO_*` variables, then passed around."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tao_client import _paths


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAO_", extra="ignore")

    data_dir: Path = Field(default_factory=_paths.data_dir)
    socket: Path | None = Field(default_factory=_paths.socket_path)
    # Who may connect to the socket: its mode (octal) and group. Callers are told apart by the kernel.
    socket_mode: str = Field(default="0600", pattern=r"^0?[0-7]{3}$")
    socket_group: str | None = None
    # Named tcp_* so that the client's TAO_HOST (an address URL) never lands here.
    tcp_host: str | None = None
    tcp_port: int | None = None
    # TLS for the TCP listener; a non-loopback address needs it, unless `insecure` says otherwise.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure: bool = False
    # What jobs of users other than admins may ask for (policy.py); None: the default policy.
    policy: Path | None = None
    manifest: Path | None = None
    docker_host: str | None = None
    # GPU inventory: "auto" probes the host, "none" disables GPUs, "0,1,..." names device indices.
    gpus: str = "auto"
    # How a job gets its devices: "request" (a Docker device request, plus NVIDIA_VISIBLE_DEVICES) or
    # "env" (NVIDIA_VISIBLE_DEVICES alone, for engines whose default runtime is nvidia).
    gpu_mode: Literal["request", "env"] = "request"
    max_running_jobs: int = Field(default=32, ge=1)
    # Seconds a task gets between SIGTERM and SIGKILL when it is cancelled.
    stop_timeout: float = Field(default=10.0, ge=0)
    # Seconds of silence after which a websocket follower gets a heartbeat.
    heartbeat_interval: float = Field(default=5.0, gt=0)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    # When a job's image is pulled, unless the job says otherwise: missing, always or never.
    pull_policy: Literal["missing", "always", "never"] = "missing"

    @property
    def socket_mode_bits(self) -> int:
        return int(self.socket_mode, 8)

    @property
    def engine_address(self) -> str:
        """The Docker engine the daemon talks to, as docker-py would find it."""
        return self.docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    @property
    def engine_socket(self) -> str | None:
        """The engine's Unix socket on this host; None for an engine reached over TCP."""
        return self.engine_address.removeprefix("unix://") if self.engine_address.startswith("unix://") else None

    @property
    def db_path(self) -> Path:
        return self.data_dir / "tao.db"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    def manifest_path(self) -> Path | None:
        """The manifest override in force: --manifest, else ~/.tao/config.json when present."""
        if self.manifest is not None:
            return self.manifest.expanduser().resolve()
        user = Path(_paths.user_manifest())
        return user if user.is_file() else None

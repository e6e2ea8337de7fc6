"""The daemon's settings: read once from flags and `TAO_*` variables, checked whole, then passed around.

Rules that tie settings together (something to listen on, TLS off loopback) live here, so every
way of building Settings gets them, not only `tao-server`'s command line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from tao_client import _paths
from tao_server import db
from tao_server.access.paths import is_loopback
from tao_server.input_checks import RequestLimits


class Settings(BaseSettings):
    # An empty variable counts as unset: compose files pass optional settings as TAO_X=${TAO_X:-}.
    model_config = SettingsConfigDict(env_prefix="TAO_", extra="ignore", env_ignore_empty=True)

    data_dir: Path = Field(default_factory=lambda: Path(_paths.data_dir()))
    socket: Path | None = Field(default_factory=lambda: Path(_paths.socket_path()))
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
    # The dashboard's own listener on 127.0.0.1, for a daemon with a Unix socket and no plain HTTP listener
    # on loopback (the daemon `tao` starts, a service without --port): `tao ui`'s links point there.
    # Port 0: a free one, chosen at each start.
    dashboard: bool = True
    dashboard_port: int = Field(default=0, ge=0, le=65535)
    # "tao" when the `tao` CLI started this daemon for its user (the hidden --started-by): it then reports
    # its log and the environment it started with, so `tao` can say when the caller's differs.
    started_by: Literal["tao"] | None = None
    # What jobs of users other than admins may ask for (policy.py); None: the default policy.
    policy: Path | None = None
    manifest: Path | None = None
    docker_host: str | None = None
    # Where jobs run: the Docker engine on this host, or a Slurm cluster (the slurm_* settings).
    backend: Literal["docker", "slurm"] = "docker"
    slurm_partition: str | None = None
    slurm_runtime: Literal["docker", "pyxis", "apptainer"] = "docker"
    # Batch scripts, outputs and exit codes: a directory the daemon and every node see at the same path.
    slurm_shared_dir: Path | None = None
    slurm_login: str | None = None  # USER@HOST: Slurm's commands over one kept-open SSH connection
    slurm_ssh_config: Path | None = None  # an ssh_config(5) file for that connection (keys, port, known hosts)
    slurm_sbatch_args: str = ""  # default sbatch arguments, as a shell would split them: "--account=ml --qos=normal"
    # A daemon in a container sees the host's files only where they are bind-mounted into it at the
    # same paths ("/home,/data"): mount sources must lie there. None: the daemon runs on the host.
    host_paths: str | None = None
    # GPU inventory: "auto" probes the host, "none" disables GPUs, "0,1,..." names device indices.
    gpus: str = "auto"
    # How a job gets its devices: "request" (a Docker device request, plus NVIDIA_VISIBLE_DEVICES) or
    # "env" (NVIDIA_VISIBLE_DEVICES alone, for engines whose default runtime is nvidia).
    gpu_mode: Literal["request", "env"] = "request"
    # The GPU line's order (jobs/gpu_line.py): "fifo" (first come, first served, each job pulling its image
    # once it has its GPUs, as before), "fair" (images pulled while jobs wait, fair share between users),
    # "backfill" (fair, and jobs with a time limit may use idle GPUs when the first in line cannot be delayed).
    gpu_line: Literal["fifo", "fair", "backfill"] = "backfill"
    # GPU use per job, where NVML can be read (tao_server.observability): each device's utilisation and memory
    # are read every gpu_sample_interval seconds and kept as series of the job holding it; a held device under
    # gpu_idle_threshold percent for gpu_idle_after seconds gives its job a condition ("GPU 1 idle for 12 min").
    # gpu_idle_after 0: no such condition.
    gpu_sample_interval: float = Field(default=5.0, ge=0.5, le=3600)
    gpu_idle_threshold: float = Field(default=5.0, ge=0, le=100)
    gpu_idle_after: float = Field(default=600.0, ge=0)
    # The devices the NVIDIA Container Toolkit gave the daemon's own container (unset on a host): a list of some
    # means that NVML numbers them from 0 there, so the daemon's indices (the host's) cannot name them for sampling.
    nvidia_visible_devices: str | None = Field(
        default=None, validation_alias=AliasChoices("NVIDIA_VISIBLE_DEVICES", "nvidia_visible_devices")
    )
    # Jobs the daemon runs at once, without GPUs (jobs with GPUs are bounded by the GPUs); more wait queued.
    # On Slurm, jobs in the cluster at once, pending or running: Slurm's own queue and limits do the rest.
    max_running_jobs: int = Field(default_factory=lambda data: 1000 if data.get("backend") == "slurm" else 32, ge=1)
    # Seconds a task gets between SIGTERM and SIGKILL when it is cancelled.
    stop_timeout: float = Field(default=10.0, ge=0)
    # Seconds of silence after which a websocket follower gets a heartbeat.
    heartbeat_interval: float = Field(default=5.0, gt=0)
    # Seconds between the pings every websocket gets: they keep idle sessions and forwards alive through
    # proxies and NATs that drop quiet connections.
    ws_ping_interval: float = Field(default=20.0, gt=0)
    # Terminals and forwarded connections open at once (jobs/sessions.py): one user's, and one job's.
    # Past either bound a new one is refused (close code 4429, or HTTP 429); those open go on.
    max_sessions_per_user: int = Field(default=64, ge=1)
    max_sessions_per_job: int = Field(default=32, ge=1)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    # When a job's image is pulled, unless the job says otherwise: missing, always or never.
    pull_policy: Literal["missing", "always", "never"] = "missing"
    # Bounds on what one request may hold: generous for real use, refused (413/422) before anything is stored.
    max_request_bytes: int = Field(default=4 * 1024**2, ge=1024)
    max_args: int = Field(default=4096, ge=1)
    max_arg_bytes: int = Field(default=128 * 1024, ge=1)
    max_envs: int = Field(default=1024, ge=0)
    max_mounts: int = Field(default=256, ge=0)
    # Notifications of jobs' starts and ends (tao_server.notify): a failed try is tried again after notify_retry_first
    # seconds, twice as long after each further one up to notify_retry_longest, for notify_retry_for seconds in all;
    # each try lasts at most notify_timeout seconds; notify_senders tries go on at once.
    notify_retry_first: float = Field(default=10.0, gt=0)
    notify_retry_longest: float = Field(default=3600.0, gt=0)
    notify_retry_for: float = Field(default=24 * 3600.0, gt=0)
    notify_timeout: float = Field(default=10.0, gt=0, le=300)
    notify_senders: int = Field(default=4, ge=1, le=64)
    # The daemon's address as its users' browsers reach it ("https://tao.example:8443"), for the links in notifications;
    # None: its TCP address, else its loopback dashboard's, else no link.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    # nvcr.io's login for jobs whose owner has none and no shared login is stored (user $oauthtoken).
    ngc_api_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("NGC_API_KEY", "ngc_api_key"))
    # Where systemd (Type=notify) wants to hear that the daemon is ready and when it stops; unset outside systemd.
    notify_socket: str | None = Field(default=None, validation_alias=AliasChoices("NOTIFY_SOCKET", "notify_socket"))

    @model_validator(mode="after")
    def _listeners_are_safe(self) -> Settings:
        if self.socket is None and self.tcp_port is None:
            raise _invalid("nothing to listen on: give --socket, or --port for TCP")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise _invalid("TLS needs both --tls-cert and --tls-key")
        for path in self.host_trees or ():
            if not os.path.isabs(path):
                raise _invalid(
                    f"--host-paths: {path!r} is not an absolute path (give the host trees mounted at the same paths, e.g. /home,/data)"
                )
            if not os.path.isdir(path):
                raise _invalid(
                    f"--host-paths: {path} is not a directory here; mount the host's {path} into the daemon's container at {path}"
                )
        if self.backend == "slurm" and self.slurm_shared_dir is None:
            raise _invalid("--backend slurm needs --slurm-shared-dir: a directory the daemon and every node see at the same path")
        if self.tcp_port is not None and not is_loopback(self.tcp_address) and self.tls_cert is None and not self.insecure:
            raise _invalid(
                f"refusing to listen on {self.tcp_host} without TLS: bearer tokens would cross the network in clear; "
                "give --tls-cert and --tls-key, bind to 127.0.0.1, or pass --insecure on a network you trust"
            )
        return self

    @property
    def limits(self) -> RequestLimits:
        return RequestLimits(max_args=self.max_args, max_arg_bytes=self.max_arg_bytes, max_envs=self.max_envs, max_mounts=self.max_mounts)

    @property
    def host_trees(self) -> tuple[str, ...] | None:
        if self.host_paths is None:
            return None
        return tuple(os.path.normpath(path.strip()) for path in self.host_paths.split(",") if path.strip())

    @property
    def tcp_address(self) -> str:
        return self.tcp_host or "127.0.0.1"

    @property
    def socket_mode_bits(self) -> int:
        return int(self.socket_mode, 8)

    @property
    def db_path(self) -> Path:
        return self.data_dir / db.FILE_NAME

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    def manifest_path(self) -> Path | None:
        """The manifest override in force: --manifest, else ~/.tao/config.json when present."""
        if self.manifest is not None:
            return self.manifest.expanduser().resolve()
        user = Path(_paths.user_manifest())
        return user if user.is_file() else None


def environment() -> dict[str, str | None]:
    """The TAO_* variables Settings reads, as this process's environment holds them (None: unset or empty).

    What a daemon reports it was started with. Secrets (NGC_API_KEY) are not TAO_* variables, and are
    never reported; nor are TAO_SOCKET and TAO_STARTED_BY, which `tao` gives the daemons it starts as flags.
    """
    from_flags = ("socket", "started_by")
    names = [
        f"TAO_{name.upper()}" for name, field in Settings.model_fields.items() if field.validation_alias is None and name not in from_flags
    ]
    return {name: os.environ.get(name) or None for name in names}


def _invalid(message: str) -> PydanticCustomError:
    """A cross-field rule broken: its message is shown as it is, without pydantic's "Value error, "."""
    return PydanticCustomError("invalid_settings", "{message}", {"message": message})

"""The daemon's settings: read once from flags and `TAO_*` variables, checked whole, then passed around.

Rules that tie settings together (something to listen on, TLS off loopback) live here, so every
way of building Settings gets them, not only `tao-server`'s command line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from tao_common import paths
from tao_server import db
from tao_server.access.input_checks import RequestLimits
from tao_server.access.paths import is_loopback
from tao_server.backends.docker.docker_settings import DockerSettings
from tao_server.backends.slurm.slurm_settings import SlurmSettings


class Settings(BaseSettings):
    """The daemon"""

    # An empty variable counts as unset: compose files pass optional settings as TAO_X=${TAO_X:-}.
    model_config = SettingsConfigDict(env_prefix="TAO_", extra="ignore", env_ignore_empty=True)

    # -- where it keeps its data and listens ---------------------------------------------------------
    data_dir: Path = Field(
        default_factory=lambda: Path(paths.data_dir()),
        description="the SQLite database, job logs, registry logins and pinned mounts",
        json_schema_extra={"flag": "--data-dir", "default": "$XDG_DATA_HOME/tao, else ~/.local/share/tao"},
    )
    socket: Path | None = Field(
        default_factory=lambda: Path(paths.socket_path()),
        description="the Unix socket to listen on",
        json_schema_extra={
            "flag": "--socket",
            "negative": "--no-socket",
            "negative_help": "do not listen on a Unix socket",
            "default": "$XDG_RUNTIME_DIR/tao/tao.sock, else ~/.tao/run/tao.sock",
        },
    )
    # Who may connect to the socket: its mode (octal) and group. Callers are told apart by the kernel.
    socket_mode: str = Field(
        default="0600",
        pattern=r"^0?[0-7]{3}$",
        description="the socket's permission bits: 0600 for the daemon's user only; 0660 with --socket-group for a shared box",
        json_schema_extra={"flag": "--socket-mode"},
    )
    socket_group: str | None = Field(
        default=None,
        description="the group that owns the socket, e.g. tao: its members may connect when --socket-mode allows the group",
        json_schema_extra={"flag": "--socket-group"},
    )
    # Named tcp_* so that the client's TAO_HOST (an address URL) never lands here.
    tcp_host: str | None = Field(
        default=None, description="the TCP address for --port", json_schema_extra={"flag": "--host", "default": "127.0.0.1"}
    )
    tcp_port: int | None = Field(
        default=None, description="also listen on this TCP port", json_schema_extra={"flag": "--port", "default": "off"}
    )
    tls_cert: Path | None = Field(
        default=None,
        description="serve TCP over TLS with this certificate (PEM); needs --tls-key. An address other than loopback needs TLS",
        json_schema_extra={"flag": "--tls-cert"},
    )
    tls_key: Path | None = Field(default=None, description="the certificate's private key (PEM)", json_schema_extra={"flag": "--tls-key"})
    insecure: bool = Field(
        default=False,
        description="allow a TCP address other than loopback without TLS (tokens then travel in clear)",
        json_schema_extra={"flag": "--insecure"},
    )
    # For a daemon with a Unix socket and no plain HTTP listener on loopback (the daemon `tao` starts,
    # a service without --port): `tao ui`'s links point there.
    dashboard: bool = Field(
        default=True,
        description="open the dashboard's listener on 127.0.0.1 when no --port serves plain HTTP on loopback",
        json_schema_extra={"negative": "--no-dashboard", "negative_help": "open no listener for the dashboard"},
    )
    dashboard_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="the dashboard listener's port on 127.0.0.1",
        json_schema_extra={"flag": "--dashboard-port", "default": "0: a free port, chosen at each start"},
    )
    # "tao" when the `tao` CLI started this daemon for its user: it then reports its log and the
    # environment it started with, so `tao` can say when the caller's differs.
    started_by: Literal["tao"] | None = Field(
        default=None,
        description="who started the daemon: tao, for the daemons it starts",
        json_schema_extra={"flag": "--started-by", "hidden": True},
    )
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="the daemon's address as users' browsers reach it (https://tao.example:8443), for the dashboard links in notifications",
        json_schema_extra={"flag": "--public-url", "default": "its TCP address, else its loopback dashboard's, else no link"},
    )

    # -- what jobs run, and who may ask for what -----------------------------------------------------
    manifest: Path | None = Field(
        default=None,
        description="the task manifest, in NVIDIA's launcher config format",
        json_schema_extra={"flag": "--manifest", "default": "~/.tao/config.json when present, else the bundled one"},
    )
    policy: Path | None = Field(
        default=None,
        description="what jobs of users other than admins may ask for (TOML; the admin guide's shared box page)",
        json_schema_extra={"flag": "--policy", "default": "the default policy"},
    )
    # A daemon in a container sees the host's files only where they are bind-mounted into it at the same paths.
    host_paths: str | None = Field(
        default=None,
        description="for a daemon in a container: the host trees mounted into it at the same paths (e.g. /home,/data); "
        "job mounts must lie under them",
        json_schema_extra={"flag": "--host-paths", "default": "none: the daemon runs on the host"},
    )
    pull_policy: Literal["missing", "always", "never"] = Field(
        default="missing", description="when jobs pull their image, unless they say otherwise", json_schema_extra={"flag": "--pull"}
    )

    # -- where jobs run -----------------------------------------------------------------------------
    backend: Literal["docker", "slurm"] = Field(
        default="docker",
        description="where jobs run: this host's Docker engine, or a Slurm cluster (the Slurm settings below)",
        json_schema_extra={"flag": "--backend"},
    )
    docker: DockerSettings = Field(default_factory=DockerSettings, description="the Docker backend's own settings")
    slurm: SlurmSettings = Field(default_factory=SlurmSettings, description="the Slurm backend's own settings")
    gpus: str = Field(
        default="auto",
        description='the GPU inventory: "auto" probes the host, "none" disables GPUs, "0,1" names device indices',
        json_schema_extra={"flag": "--gpus"},
    )
    gpu_mode: Literal["request", "env"] = Field(
        default="request",
        description="how a job gets its devices: request (a Docker device request, plus NVIDIA_VISIBLE_DEVICES) "
        "or env (NVIDIA_VISIBLE_DEVICES alone, for engines whose default runtime is nvidia)",
        json_schema_extra={"flag": "--gpu-mode"},
    )
    gpu_line: Literal["fifo", "fair", "backfill"] = Field(
        default="backfill",
        description="the GPU line's order: fifo (first come, first served), fair (fair share between users, images pulled "
        "while jobs wait), backfill (fair, and jobs with --time use idle GPUs the first in line cannot use yet)",
        json_schema_extra={"flag": "--gpu-line"},
    )
    # GPU use per job, where NVML can be read (tao_server.observability).
    gpu_sample_interval: float = Field(
        default=5.0,
        ge=0.5,
        le=3600,
        description="seconds between readings of each GPU's utilisation and memory, kept as series of the job holding it",
    )
    gpu_idle_threshold: float = Field(default=5.0, ge=0, le=100, description="a held GPU under this utilisation (percent) counts as idle")
    gpu_idle_after: float = Field(
        default=600.0,
        ge=0,
        description='seconds a held GPU may be idle before its job gets a condition ("GPU 1 idle for 12 min"); 0: never',
    )
    # The devices the NVIDIA Container Toolkit gave the daemon's own container (unset on a host): a list of some
    # means that NVML numbers them from 0 there, so the daemon's indices (the host's) cannot name them for sampling.
    nvidia_visible_devices: str | None = Field(
        default=None,
        validation_alias=AliasChoices("NVIDIA_VISIBLE_DEVICES", "nvidia_visible_devices"),
        description="the GPUs the NVIDIA Container Toolkit gave the daemon's own container; it sets this",
        json_schema_extra={"env": "NVIDIA_VISIBLE_DEVICES"},
    )
    max_running_jobs: int = Field(
        default_factory=lambda data: 1000 if data.get("backend") == "slurm" else 32,
        ge=1,
        description="jobs without GPUs running at once (more wait queued; jobs with GPUs are bounded by the GPUs); on Slurm, "
        "jobs in the cluster at once, pending or running",
        json_schema_extra={"flag": "--max-running-jobs", "default": "32; 1000 on Slurm"},
    )
    stop_timeout: float = Field(
        default=10.0,
        ge=0,
        description="seconds a task gets between SIGTERM and SIGKILL when it is cancelled; the daemon's own stop ends within it too",
        json_schema_extra={"flag": "--stop-timeout"},
    )
    retry_backoff: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="seconds a job that failed waits before it runs again (`--retries`); doubled at each further attempt",
        json_schema_extra={"flag": "--retry-backoff"},
    )

    # -- streams and sessions -------------------------------------------------------------------------
    heartbeat_interval: float = Field(default=5.0, gt=0, description="seconds of silence after which a log follower gets a heartbeat")
    ws_ping_interval: float = Field(
        default=20.0,
        gt=0,
        description="seconds between the pings every websocket gets, which keep idle sessions and forwards alive through proxies and NATs",
    )
    max_sessions_per_user: int = Field(
        default=64,
        ge=1,
        description="terminals and forwarded connections one user may have open at once; past it a new one is refused (429)",
    )
    max_sessions_per_job: int = Field(
        default=32,
        ge=1,
        description="terminals and forwarded connections one job may have open at once; past it a new one is refused (429)",
    )

    # -- bounds on one request: generous for real use, refused (413/422) before anything is stored ---
    max_request_bytes: int = Field(
        default=4 * 1024**2, ge=1024, description="the largest request body, in bytes", json_schema_extra={"default": "4194304 (4 MiB)"}
    )
    max_args: int = Field(default=4096, ge=1, description="arguments a job may have")
    max_arg_bytes: int = Field(
        default=128 * 1024,
        ge=1,
        description="bytes one argument may have (Linux refuses longer ones)",
        json_schema_extra={"default": "131072 (128 KiB)"},
    )
    max_envs: int = Field(default=1024, ge=0, description="environment variables a job may set")
    max_mounts: int = Field(default=256, ge=0, description="mounts a job may have")

    # -- notifications of jobs' starts and ends (tao_server.notify) ----------------------------------
    notify_retry_first: float = Field(default=10.0, gt=0, description="seconds before a failed delivery is tried again")
    notify_retry_longest: float = Field(default=3600.0, gt=0, description="the longest wait between tries (it doubles after each)")
    notify_retry_for: float = Field(default=24 * 3600.0, gt=0, description="seconds a delivery is tried for before it is given up")
    notify_timeout: float = Field(default=10.0, gt=0, le=300, description="seconds one try may last")
    notify_senders: int = Field(default=4, ge=1, le=64, description="tries that go on at once")

    # -- the process ------------------------------------------------------------------------------------
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        default="info", description="how much the daemon logs", json_schema_extra={"flag": "--log-level"}
    )
    ngc_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("NGC_API_KEY", "ngc_api_key"),
        description="nvcr.io's login (user $oauthtoken) for jobs whose owner has none and no shared login is stored",
        json_schema_extra={"env": "NGC_API_KEY"},
    )
    notify_socket: str | None = Field(
        default=None,
        validation_alias=AliasChoices("NOTIFY_SOCKET", "notify_socket"),
        description="where systemd (Type=notify) wants to hear that the daemon is ready and when it stops; systemd sets it",
        json_schema_extra={"env": "NOTIFY_SOCKET"},
    )

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
        if self.backend == "slurm" and (missing := self.slurm.missing()) is not None:
            raise _invalid(missing)
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
        user = Path(paths.user_manifest())
        return user if user.is_file() else None


# The Settings fields that hold a backend's own settings model, and that model.
BACKEND_SETTINGS: dict[str, type[BaseSettings]] = {"docker": DockerSettings, "slurm": SlurmSettings}


@dataclass(frozen=True)
class Setting:
    """One setting as flags, variables and the reference show it, read from its model's field: the one source of all three."""

    key: str  # where Settings(...) takes it: "stop_timeout", "slurm.partition"
    section: str  # "" for the daemon's own, else the backend's: "docker", "slurm"
    env: str  # TAO_STOP_TIMEOUT, TAO_SLURM_PARTITION; NGC_API_KEY
    flag: str | None  # --stop-timeout; None: a variable only
    negative: str | None  # --no-socket: the flag that turns it off
    negative_help: str  # what that flag does
    hidden: bool  # a flag `tao` gives the daemons it starts, not for people
    description: str
    default: str  # the default, as people read it
    annotation: Any  # the field's type: Path, int, float, str, bool, a Literal, or those or None
    choices: tuple[str, ...] | None


def settings_catalog() -> list[Setting]:
    """Every setting of the daemon and of each backend, in the order their models declare them."""
    catalog = _section(Settings, "", "TAO_")
    for section, model in BACKEND_SETTINGS.items():
        catalog += _section(model, section, str(model.model_config.get("env_prefix", "")))
    return catalog


def _section(model: Any, section: str, prefix: str) -> list[Setting]:
    found = []
    for name, field in model.model_fields.items():
        if section == "" and name in BACKEND_SETTINGS:
            continue
        extra: dict[str, Any] = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        annotation = field.annotation
        literal = [arg for arg in get_args(annotation) if get_origin(arg) is Literal] or (
            [annotation] if get_origin(annotation) is Literal else []
        )
        found.append(
            Setting(
                key=f"{section}.{name}" if section else name,
                section=section,
                env=str(extra.get("env") or f"{prefix}{name.upper()}"),
                flag=extra.get("flag"),
                negative=extra.get("negative"),
                negative_help=str(extra.get("negative_help", "")),
                hidden=bool(extra.get("hidden")),
                description=field.description or "",
                default=str(extra["default"]) if "default" in extra else _shown_default(field.default),
                annotation=annotation,
                choices=tuple(str(choice) for choice in get_args(literal[0])) if literal else None,
            )
        )
    return found


def _shown_default(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value) if value != "" else "none"


def environment() -> dict[str, str | None]:
    """The TAO_* variables Settings reads, as this process's environment holds them (None: unset or empty).

    What a daemon reports it was started with. Secrets (NGC_API_KEY) are not TAO_* variables, and are
    never reported; nor are TAO_SOCKET and TAO_STARTED_BY, which `tao` gives the daemons it starts as flags.
    """
    from_flags = ("socket", "started_by")
    names = [each.env for each in settings_catalog() if each.env.startswith("TAO_") and each.key not in from_flags]
    return {name: os.environ.get(name) or None for name in names}


def _invalid(message: str) -> PydanticCustomError:
    """A cross-field rule broken: its message is shown as it is, without pydantic's "Value error, "."""
    return PydanticCustomError("invalid_settings", "{message}", {"message": message})

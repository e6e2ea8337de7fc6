"""A job's container, asked for once: the one mapping of a LaunchSpec that every runtime renders.

`ContainerRequest.from_spec` reads the job's LaunchSpec (mounts, environment, the validated
DockerOptions, GPUs) into plain, normalised values, so that no backend reads `spec.options`
itself. Two renderings of the same request follow from it:

- the Docker engine's API arguments (`backends/docker/docker_backend.py`, which owns docker-py);
- a `docker run` command line (`docker_run` below), for a batch script on a Slurm node;
  `backends/slurm/script.py` also renders it for pyxis and Apptainer.

Values reach the container byte for byte on the command line too:

- `--mount` takes one CSV record, so a field holding a comma, a quote or a line break is quoted
  CSV's way. CSV turns a "\r\n" inside quotes into "\n", so a path holding one is refused: it
  would mount another directory.
- The environment's values travel in the docker CLI's own environment (`--env NAME`, and the
  value in `DockerRun.env`), never on its command line, which every user of the node can read
  in /proc; only the owner (and root) can read a process's environment. Variables that steer
  the CLI itself (PATH, HOME, DOCKER_*, LD_*, the Go runtime's, the proxies) go on the command
  line as `--env NAME=VALUE` instead, so that they reach the container and not the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tao_server.backends.base import LaunchSpec, Mount
from tao_server.errors import LaunchFailure

# The labels that mark a job's container, on the daemon's host and on a Slurm node alike.
LABEL_DAEMON = "org.tao-launcher.daemon"
LABEL_JOB = "org.tao-launcher.job"
NANO = 10**9

# Names the docker CLI (or the loader and Go runtime under it) reads from its own environment.
_CLI_READS = re.compile(
    r"PATH|HOME|DOCKER_\w*|LD_\w*|GO(?:DEBUG|GC|MAXPROCS|MEMLIMIT|TRACEBACK)|(?:HTTPS?|NO|ALL)_PROXY|(?:https?|no|all)_proxy"
)
_CSV_SPECIAL = re.compile(r'[,"\r\n]')


@dataclass(frozen=True)
class Ulimit:
    name: str
    soft: int  # -1: unlimited
    hard: int


@dataclass(frozen=True)
class PublishedPort:
    """A container port ("8888/tcp") published on `host_ip`:`host_port` (None: any free port)."""

    port: str
    host_ip: str
    host_port: int | None

    @property
    def number(self) -> int:
        return int(self.port.partition("/")[0])

    @property
    def protocol(self) -> str:
        return self.port.partition("/")[2]


@dataclass(frozen=True)
class ContainerRequest:
    """One job's container as every runtime is asked for it. A list option is None when the job
    did not set it (the engine's API tells None from empty for some of them)."""

    image: str
    command: tuple[str, ...]
    name: str
    labels: Mapping[str, str]
    mounts: tuple[Mount, ...] = ()
    env: Mapping[str, str] | None = None  # the job's own variables, in the order given
    gpus: tuple[str, ...] = ()  # the device ids the scheduler granted
    user: str | None = None
    group_add: tuple[str, ...] | None = None
    shm_size: int | None = None
    ulimits: tuple[Ulimit, ...] = ()
    ports: tuple[PublishedPort, ...] = ()
    privileged: bool = False
    network: str | None = None
    ipc: str | None = None
    cap_add: tuple[str, ...] | None = None
    cap_drop: tuple[str, ...] | None = None
    devices: tuple[str, ...] | None = None
    security_opt: tuple[str, ...] | None = None
    mem_limit: int | None = None
    nano_cpus: int | None = None
    tty: bool = False
    # Standard input kept open for a terminal (`docker run -i`). Without a TTY its end (EOF) closes
    # the task's input once; with one, a session may detach and attach again, so it never does.
    stdin_open: bool = False

    @classmethod
    def from_spec(cls, spec: LaunchSpec, *, name: str, labels: Mapping[str, str]) -> ContainerRequest:
        options = spec.options
        return cls(
            image=spec.image,
            command=tuple(spec.command),
            name=name,
            labels=dict(labels),
            mounts=tuple(spec.mounts),
            env=dict(spec.envs),
            gpus=tuple(spec.devices),
            user=options.get("user"),
            group_add=_strings(options.get("group_add")),
            shm_size=options.get("shm_size"),
            ulimits=tuple(Ulimit(u["name"], u["soft"], u["hard"]) for u in options.get("ulimits", [])),
            ports=tuple(PublishedPort(port, ip, host_port) for port, (ip, host_port) in options.get("ports", {}).items()),
            privileged=options.get("privileged", False),
            network=options.get("network"),
            ipc=options.get("ipc"),
            cap_add=_strings(options.get("cap_add")),
            cap_drop=_strings(options.get("cap_drop")),
            devices=_strings(options.get("devices")),
            security_opt=_strings(options.get("security_opt")),
            mem_limit=options.get("mem_limit"),
            # As the engine's API has always been given it: the same integer on every rendering.
            nano_cpus=int(options["cpus"] * 1e9) if "cpus" in options else None,
            tty=options.get("tty", False),
            stdin_open=spec.interactive,
        )

    @property
    def visible_devices(self) -> str:
        """NVIDIA_VISIBLE_DEVICES for the granted GPUs. A job without GPUs gets "void": CUDA images set
        NVIDIA_VISIBLE_DEVICES=all, which under an nvidia runtime would hand it every GPU on the box."""
        return ",".join(self.gpus) if self.gpus else "void"

    @property
    def environment(self) -> dict[str, str]:
        """What the container's environment adds to the image's: the job's variables, then its GPUs."""
        return {**(self.env or {}), "NVIDIA_VISIBLE_DEVICES": self.visible_devices}


def _strings(values: Any) -> tuple[str, ...] | None:
    return None if values is None else tuple(str(v) for v in values)


@dataclass(frozen=True)
class DockerRun:
    """`docker run` for one request: `argv` to run, with `env` added to the CLI's environment."""

    options: tuple[str, ...]  # everything between `docker run` and the image
    target: tuple[str, ...]  # the image, then the command
    env: Mapping[str, str]  # values the CLI passes on by name (`--env NAME`)

    @property
    def argv(self) -> list[str]:
        return ["docker", "run", *self.options, *self.target]


def docker_run(request: ContainerRequest, gpu_mode: str = "request", *, remove: bool = False) -> DockerRun:
    """The `docker run` command that makes the container the engine's API makes from `request`.
    `remove` adds --rm; `gpu_mode` is the backend's ("request": --gpus, "env": the variable alone)."""
    options = ["--init", *(["--rm"] if remove else []), "--name", request.name]
    options += _flags("--label", (f"{key}={value}" for key, value in request.labels.items()))
    options += _flags("--mount", (mount_spec(m) for m in request.mounts))
    by_name, on_line = _split_environment(request.environment)
    options += _flags("--env", [*by_name, *(f"{k}={v}" for k, v in on_line.items())])
    options += _user_options(request)
    options += _resource_options(request)
    options += _isolation_options(request)
    if gpu_mode == "request" and request.gpus:
        options += ["--gpus", csv_field("device=" + ",".join(request.gpus))]
    return DockerRun(tuple(options), (request.image, *request.command), by_name)


def _flags(flag: str, values: Iterable[str]) -> list[str]:
    return [item for value in values for item in (flag, value)]


def _split_environment(environment: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(variables passed by name through the CLI's environment, variables the CLI would read itself)."""
    by_name = {k: v for k, v in environment.items() if not _CLI_READS.fullmatch(k)}
    return by_name, {k: v for k, v in environment.items() if k not in by_name}


def _user_options(request: ContainerRequest) -> list[str]:
    options = ["--user", request.user] if request.user is not None else []
    return options + _flags("--group-add", request.group_add or ())


def _resource_options(request: ContainerRequest) -> list[str]:
    options = ["--shm-size", str(request.shm_size)] if request.shm_size is not None else []
    options += _flags("--ulimit", (f"{u.name}={u.soft}:{u.hard}" for u in request.ulimits))
    if request.mem_limit is not None:
        options += ["--memory", str(request.mem_limit)]
    if request.nano_cpus:  # the engine's API takes 0 as "no limit" too
        options += ["--cpus", decimal_cpus(request.nano_cpus)]
    return options


def _isolation_options(request: ContainerRequest) -> list[str]:
    options = _flags("--publish", (publish_spec(p) for p in request.ports))
    options += ["--privileged"] if request.privileged else []
    options += ["--network", request.network] if request.network else []
    options += ["--ipc", request.ipc] if request.ipc else []
    for flag, values in (("--cap-add", request.cap_add), ("--cap-drop", request.cap_drop), ("--device", request.devices)):
        options += _flags(flag, values or ())
    options += _flags("--security-opt", request.security_opt or ())
    options += ["--interactive"] if request.stdin_open else []
    return options + (["--tty"] if request.tty else [])


def decimal_cpus(nano_cpus: int) -> str:
    """`--cpus` exactly: the CLI multiplies it by 1e9 as a fraction and refuses what is not whole."""
    return format(Decimal(nano_cpus) / NANO, "f").rstrip("0").rstrip(".") if nano_cpus % NANO else str(nano_cpus // NANO)


def publish_spec(port: PublishedPort) -> str:
    """`--publish` for a port: IP:HOST_PORT:PORT/PROTO, an IPv6 address in brackets, no host port for any."""
    ip = f"[{port.host_ip}]" if ":" in port.host_ip else port.host_ip
    host_port = "" if port.host_port is None else str(port.host_port)
    return f"{ip}:{host_port}:{port.number}/{port.protocol}"


def mount_spec(mount: Mount) -> str:
    """`--mount` for a bind mount, as one CSV record (Docker's and Apptainer's syntax)."""
    try:
        fields = ["type=bind", csv_field(f"source={mount.source}"), csv_field(f"target={mount.destination}")]
    except ValueError as exc:
        raise LaunchFailure(f"Mounts: {exc}; rename it to mount it on this backend", field="Mounts") from None
    return ",".join(fields + (["readonly"] if mount.read_only else []))


def csv_field(value: str) -> str:
    """`value` as one field of a CSV record, quoted when it must be. A "\r\n" cannot survive: the
    reader makes it "\n"."""
    if "\r\n" in value:
        raise ValueError(f"{value!r} holds a carriage return before a line feed, which a --mount value cannot carry")
    return '"' + value.replace('"', '""') + '"' if _CSV_SPECIAL.search(value) else value

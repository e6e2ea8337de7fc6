"""The Docker backend: one container per job, created, attached, started and removed through docker-py.

docker-py is synchronous; the runner calls it from worker threads, never from the event loop.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.types import DeviceRequest, Mount, Ulimit

from tao_server.access.peer import ucred
from tao_server.backends.base import AdoptedRun, Interruption, LaunchSpec, OutputStream, RunExit, RunState
from tao_server.backends.container import LABEL_DAEMON, LABEL_JOB, ContainerRequest, PublishedPort
from tao_server.backends.docker.failures import engine_errors, explain, guarded, reaching, start_failure
from tao_server.backends.docker.image_store import DockerImages
from tao_server.backends.docker.session import DockerTerminal, belongs_to, connect_in_namespace, open_namespace
from tao_server.backends.docker.stream import HEAD_SIZE, AttachedStream, Output, from_byte
from tao_server.backends.entrypoint import init_exec_failure
from tao_server.errors import CANNOT_EXECUTE, NOT_FOUND, BackendError, ImageMissing, LaunchFailure

DEFAULT_DATA_ROOT = "/var/lib/docker"
DEFAULT_ADDRESS = "unix:///var/run/docker.sock"
_EXIT_RECORDED = 2.0  # seconds an ended stream may precede the exit the engine records


class DockerBackend:
    name = "docker"
    places: frozenset[str] = frozenset()  # one engine on one host: the daemon schedules its GPUs and keeps time limits
    attaches = True  # docker attach, resize and the container's network namespace (backends/docker/session.py)

    def __init__(self, daemon_id: str, base_url: str | None = None, pool_size: int = 64, gpu_mode: str = "request") -> None:
        self.daemon_id = daemon_id
        # "request": a device request per job (nvidia-container-toolkit); "env": NVIDIA_VISIBLE_DEVICES
        # alone, for engines whose default runtime is nvidia.
        self.gpu_mode = gpu_mode
        self.address = base_url or os.environ.get("DOCKER_HOST") or DEFAULT_ADDRESS
        with reaching(self.address):
            self._connection: dict[str, Any] = {"base_url": base_url} if base_url else docker.utils.kwargs_from_env()
            self._api = docker.APIClient(**self._connection, max_pool_size=pool_size)
        self.images = DockerImages(self._api, self._connection)
        # A container's ports are reached through its process's namespace under /proc, which names the
        # engine's pids only when the engine runs on this host in the daemon's own pid namespace.
        self._pids_shared = engine_pid(self.address) is not None

    def ping(self) -> None:
        """Raise BackendError unless the engine answers."""
        with reaching(self.address):
            self._api.ping()

    def close(self) -> None:
        self._api.close()

    def prepare(self, spec: LaunchSpec) -> DockerRun:
        """The job's container, created but not started; ImageMissing when the engine lacks its image."""
        request = ContainerRequest.from_spec(spec, name=f"tao-{spec.job_id}", labels={LABEL_DAEMON: self.daemon_id, LABEL_JOB: spec.job_id})
        _check_ports_free(request.ports)
        with engine_errors(f"creating the container of job {spec.job_id}"):
            try:
                created = self._api.create_container(**create_arguments(self._api, request, self.gpu_mode))
            except docker.errors.ImageNotFound:
                raise ImageMissing(spec.image) from None
            except docker.errors.APIError as exc:
                raise LaunchFailure(f"the engine refused to create the container: {explain(exc)}") from None
        return DockerRun(self._api, created["Id"], tty=request.tty, pids_shared=self._pids_shared)

    def adopt(self) -> list[AdoptedRun]:
        """The containers this daemon's jobs left, running or ended, after a restart."""
        with engine_errors("listing this daemon's containers"):
            return [
                self._adopted(summary) for summary in self._api.containers(all=True, filters={"label": f"{LABEL_DAEMON}={self.daemon_id}"})
            ]

    def find(self, job_id: str) -> AdoptedRun | None:
        labels = [f"{LABEL_DAEMON}={self.daemon_id}", f"{LABEL_JOB}={job_id}"]
        with engine_errors(f"looking for the container of job {job_id}"):
            found = self._api.containers(all=True, filters={"label": labels})
            return self._adopted(found[0]) if found else None

    def _adopted(self, summary: dict[str, Any]) -> AdoptedRun:
        state = self._api.inspect_container(summary["Id"])["State"]
        status = _RUN_STATES.get(str(state.get("Status")), "active")
        # A created-but-never-started container has no meaningful exit code.
        exit_code = state.get("ExitCode") if status == "exited" else None
        return AdoptedRun(
            summary["Labels"].get(LABEL_JOB, ""),
            DockerRun(self._api, summary["Id"], tty=False, pids_shared=self._pids_shared),
            status,
            exit_code,
        )

    def describe(self) -> dict[str, Any]:
        with engine_errors("asking the engine's version"):
            version = self._api.version()
        return {
            "backend": self.name,
            "version": version.get("Version"),
            "api_version": version.get("ApiVersion"),
            "os": version.get("Os"),
            "arch": version.get("Arch"),
        }

    def protected_paths(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The engine's data root (DockerRootDir) and its Unix socket."""
        try:
            with engine_errors("asking the engine's data root"):
                root = str(self._api.info().get("DockerRootDir") or DEFAULT_DATA_ROOT)
        except BackendError:  # an engine that cannot say: protect the default
            root = DEFAULT_DATA_ROOT
        engine_socket = socket_path(self.address)
        return (root,), ((engine_socket,) if engine_socket else ())

    def mount_namespace_pid(self) -> int | None:
        """The engine's pid, when it listens on a local Unix socket: bind mounts resolve in its namespace."""
        return engine_pid(self.address)


class DockerRun:
    """One job's container."""

    def __init__(self, api: docker.APIClient, container_id: str, tty: bool, pids_shared: bool = False) -> None:
        self._api = api
        self._pids_shared = pids_shared
        self.container_id = container_id
        self._tty = tty
        self._attached: AttachedStream | None = None
        self._head = bytearray()
        self._exit_code: int | None = None  # learnt at the end of the output, so that wait() need not ask again
        self._removed = False  # the container went behind the daemon's back (docker rm): its end is not its task's
        # Its network namespace, opened at the first connection to one of its ports: a descriptor names
        # the namespace itself, so a pid the kernel hands on after the container ends can never mislead it.
        self._network: _Namespace | None = None
        self._host_network = False
        self._lock = threading.Lock()

    def _exited(self, exit_code: int | None) -> None:
        """The end the output stream learnt: the exit code, or None for a container removed behind the daemon's back."""
        self._exit_code = exit_code
        self._removed = exit_code is None

    @property
    def run_id(self) -> str:
        return self.container_id

    def start(self) -> None:
        """Attach to the container's output, then start it: not a byte of it is missed."""
        with engine_errors(f"attaching to container {self.container_id[:12]}"):
            # The socket after the upgrade has no read timeout: a task may be quiet for hours.
            sock = self._api.attach_socket(self.container_id, params={"stdout": 1, "stderr": 1, "stream": 1})
        self._attached = AttachedStream(sock, self._tty)
        try:
            with engine_errors(f"starting container {self.container_id[:12]}"):
                try:
                    self._api.start(self.container_id)
                except docker.errors.APIError as exc:
                    raise start_failure(exc) from None
        except BaseException:
            self._attached.close()
            self._attached = None
            raise

    def output(self, offset: int = 0) -> OutputStream:
        """The output from byte `offset`: the attach stream of a run this daemon started, else the engine's log."""
        attached, self._attached = self._attached, None
        streams = _Streams(self._api, self.container_id, attached, self._exited)
        return Output(streams.chunks(), offset, streams.close, self._head)

    def wait_running(self) -> bool:
        return True  # a started container runs: the engine has no queue

    def wait(self) -> RunExit:
        exit_code = self._exit_code
        if exit_code is None and not self._removed:  # the output was not read to its end, which learns the exit code on the way
            with engine_errors(f"waiting for container {self.container_id[:12]}"):
                try:
                    exit_code = int(self._api.wait(self.container_id, timeout=None)["StatusCode"])
                except docker.errors.NotFound:
                    self._removed = True
        if exit_code is None:
            reason = f"its container {self.container_id[:12]} was removed outside the launcher (docker rm); its exit code is lost"
            return RunExit(None, interrupted=Interruption("cancelled", reason))
        head = bytes(self._head)
        if exit_code in (CANNOT_EXECUTE, NOT_FOUND) and not head:  # nobody read the output: ask the engine
            with engine_errors(f"reading the log of container {self.container_id[:12]}"):
                head = self._api.logs(self.container_id, stdout=True, stderr=True, stream=False)[:HEAD_SIZE]
        failure = init_exec_failure(exit_code, head)
        if failure is not None:
            return RunExit(failure.exit_code, failure.message)
        return RunExit(exit_code)

    def cancel(self, grace: float) -> None:
        with engine_errors(f"stopping container {self.container_id[:12]}"):
            try:
                # The engine counts whole seconds: round up, so the task gets at least its grace.
                self._api.stop(self.container_id, timeout=math.ceil(max(0.0, grace)))
            except docker.errors.NotFound:
                pass

    def condition(self) -> str | None:
        return None  # a started container runs: nothing holds it back

    def expected_start(self) -> datetime | None:
        return None  # the engine has no queue: the daemon's GPU line plans the starts

    def open_terminal(self) -> DockerTerminal:
        return DockerTerminal(self._api, self.container_id)

    def connect(self, port: int, timeout: float) -> socket.socket:
        """A connection to `port` on the container's loopback, made inside its network namespace."""
        with self._lock:
            if self._network is None and not self._host_network:
                self._open_network()
            # A duplicate of our own: a release closing the original meanwhile cannot hand its number to another namespace.
            namespace = os.dup(self._network.fd) if self._network is not None else None
        if namespace is None:  # the job shares the host's network: its loopback is the daemon's
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            except OSError as exc:
                raise LaunchFailure(f"nothing answers on port {port} of the job (on the host's network): {exc.strerror or exc}") from None
            sock.settimeout(None)
            return sock
        try:
            return connect_in_namespace(namespace, port, timeout)
        finally:
            os.close(namespace)

    def _open_network(self) -> None:
        if not self._pids_shared:
            raise BackendError(
                "a job's ports are reached from inside its network namespace, which needs the Docker engine on the daemon's "
                "own host and pid namespace (a daemon in a container: pid: host and CAP_SYS_ADMIN); this engine is not"
            )
        inspected = self._running_state()
        if inspected["HostConfig"].get("NetworkMode") == "host":
            self._host_network = True
            return
        pid = inspected["State"]["Pid"]
        namespace = open_namespace(pid)
        # Still running as that pid once the namespace is open, and that pid in the container's cgroup:
        # then the descriptor is the container's namespace.
        if self._running_state()["State"]["Pid"] != pid or not belongs_to(pid, self.container_id):
            os.close(namespace)
            raise BackendError(f"process {pid} is not container {self.container_id[:12]}'s: its network was not entered")
        self._network = _Namespace(namespace, weakref.finalize(self, os.close, namespace))

    def _running_state(self) -> dict[str, Any]:
        with engine_errors(f"inspecting container {self.container_id[:12]}"):
            inspected: dict[str, Any] = self._api.inspect_container(self.container_id)
        if not inspected["State"].get("Running") or not inspected["State"].get("Pid"):
            raise LaunchFailure(f"container {self.container_id[:12]} is not running: its ports cannot be reached")
        return inspected

    def release(self) -> None:
        with self._lock:
            if self._network is not None:
                self._network.close()  # the finalizer: closed once, here or when the handle is collected
                self._network = None
        with engine_errors(f"removing container {self.container_id[:12]}"):
            try:
                self._api.remove_container(self.container_id, force=True)
            except docker.errors.NotFound:
                pass


@dataclass(frozen=True)
class _Namespace:
    """A run's network namespace, open; `close` is its finalizer (a handle dropped after an outage closes it too)."""

    fd: int
    close: weakref.finalize


# The engine's container states as the contract's run states; the others ("running", "paused",
# "restarting", "removing") are active: the container is there and not done.
_RUN_STATES: dict[str, RunState] = {"created": "prepared", "exited": "exited", "dead": "exited"}


def socket_path(address: str) -> str | None:
    """The engine's Unix socket on this host; None for an engine reached over TCP or SSH."""
    for prefix in ("unix://", "http+unix://"):
        if address.startswith(prefix):
            return "/" + address.removeprefix(prefix).lstrip("/")
    return None


def engine_pid(address: str) -> int | None:
    """The pid of the engine behind a local Unix socket, as the kernel names the peer; None for a remote or silent one."""
    path = socket_path(address)
    if path is None:
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return None
        pid, _uid, _gid = ucred(probe)
    return pid or None  # 0: the engine is outside this process's pid namespace (a daemon in a container)


class _Streams:
    """A container's whole output from byte 0, across the connections it takes to get it.

    First the attach stream when this daemon started the container, else the engine's log. A
    stream also ends when its connection is cut (an engine restart, a proxy that went away); if
    the container still runs then, its log is read again from where the output had got to. An
    engine that does not answer at all is BackendUnavailable, never a quiet end.
    """

    def __init__(
        self, api: docker.APIClient, container_id: str, attached: AttachedStream | None, exited: Callable[[int | None], None]
    ) -> None:
        self._api = api
        self._container_id = container_id
        self._attached = attached
        self._exited = exited
        self._close: Callable[[], None] = attached.close if attached is not None else lambda: None

    def close(self) -> None:
        self._close()

    def chunks(self) -> Iterator[bytes]:
        delivered = 0
        stream = guarded(iter(self._attached), "reading a container's output") if self._attached is not None else self._log()
        while True:
            for chunk in stream:
                delivered += len(chunk)
                yield chunk
            if self._ended():
                return
            stream = from_byte(self._log(), delivered)  # the log starts at byte 0 again

    def _log(self) -> Iterator[bytes]:
        with engine_errors(f"following the log of container {self._container_id[:12]}"):
            # From the first byte (this assumes the json-file log driver without rotation).
            replay = self._api.logs(self._container_id, stdout=True, stderr=True, stream=True, follow=True)
        self._close = replay.close
        return guarded(replay, "reading a container's log")

    def _ended(self) -> bool:
        """Whether the container has stopped. A stream can end a moment before the engine records the
        exit, so allow it that moment; a container still running after it had its stream cut. One
        removed behind the daemon's back has ended too, its exit code lost with it."""
        with engine_errors(f"asking whether container {self._container_id[:12]} still runs"):
            try:
                ended = self._api.wait(self._container_id, timeout=_EXIT_RECORDED)
            except requests.exceptions.ReadTimeout:
                return False
            except docker.errors.NotFound:
                self._exited(None)
                return True
        self._exited(int(ended["StatusCode"]))
        return True


def create_arguments(api: docker.APIClient, request: ContainerRequest, gpu_mode: str) -> dict[str, Any]:
    """docker-py's create_container arguments for `request` (the engine's API rendering of it)."""
    return {
        "image": request.image,
        "command": list(request.command),
        "environment": request.environment,
        "user": request.user,
        "tty": request.tty,
        "stdin_open": request.stdin_open,
        # docker-py's "attached" run (detach=False) is what sets StdinOnce: the task's input ends with
        # the first session's EOF. A TTY's session detaches and attaches again: its input stays open.
        "detach": request.stdin_open and request.tty,
        "ports": [_port_key(p) for p in request.ports] or None,
        "labels": dict(request.labels),
        "name": request.name,
        "host_config": api.create_host_config(**_host_config(request, gpu_mode)),
    }


def _host_config(request: ContainerRequest, gpu_mode: str) -> dict[str, Any]:
    return {
        "mounts": [Mount(target=m.destination, source=m.source, type="bind", read_only=m.read_only) for m in request.mounts],
        "shm_size": request.shm_size,
        "ulimits": [Ulimit(name=u.name, soft=u.soft, hard=u.hard) for u in request.ulimits] or None,
        "port_bindings": {p.port: (p.host_ip, p.host_port) for p in request.ports} or None,
        "privileged": request.privileged,
        "network_mode": request.network,
        "ipc_mode": request.ipc,
        "cap_add": _listed(request.cap_add),
        "cap_drop": _listed(request.cap_drop),
        "group_add": _listed(request.group_add),
        "devices": _listed(request.devices),
        "security_opt": _listed(request.security_opt),
        "mem_limit": request.mem_limit,
        "nano_cpus": request.nano_cpus,
        "device_requests": _gpu_requests(request.gpus) if gpu_mode == "request" else None,
        # An init as PID 1 forwards SIGTERM to the task and reaps zombies, so a cancel is prompt.
        "init": True,
    }


def _listed(values: tuple[str, ...] | None) -> list[str] | None:
    return None if values is None else list(values)


def _check_ports_free(ports: tuple[PublishedPort, ...]) -> None:
    """Name a host port that is taken before the engine fails on it with a message about endpoints."""
    for port in ports:
        if port.host_port is None:
            continue
        family = socket.AF_INET6 if ":" in port.host_ip else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM if port.protocol == "udp" else socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port left in TIME_WAIT is free
            try:
                probe.bind((port.host_ip, port.host_port))
            except OSError as exc:
                raise LaunchFailure(
                    f"DockerOptions.ports.{port.port}: host port {port.host_ip}:{port.host_port} cannot be used "
                    f"({exc.strerror}); choose another port, or null for any free one"
                ) from None


def _port_key(port: PublishedPort) -> tuple[int, str] | int:
    return port.number if port.protocol == "tcp" else (port.number, port.protocol)


def _gpu_requests(gpus: tuple[str, ...]) -> list[DeviceRequest] | None:
    return [DeviceRequest(device_ids=list(gpus), capabilities=[["gpu"]])] if gpus else None

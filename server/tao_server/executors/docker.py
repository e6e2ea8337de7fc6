"""The Docker executor: one container per job, started through docker-py.

docker-py is synchronous; the runner calls it from worker threads, never from the event loop.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator
from typing import Any

import docker
import docker.auth
import docker.errors
from docker.types import DeviceRequest, Mount, Ulimit

from tao_server.executors.base import ContainerSpec, ContainerState, ImageMissing, OutputStream, StartFailure

log = logging.getLogger(__name__)

LABEL_DAEMON = "org.tao-launcher.daemon"
LABEL_JOB = "org.tao-launcher.job"

READ_SIZE = 256 * 1024

# What docker-init (tini) prints, as PID 1, when the task's program cannot be executed.
_INIT_EXEC_FAILURE = re.compile(rb"^\[FATAL tini \(\d+\)\] exec (.+?) failed: (.+?)\r?\n")

# RLIMIT_* numbers as runc reports them ("error setting rlimit type 8").
_RLIMIT_NAMES = {
    0: "cpu", 1: "fsize", 2: "data", 3: "stack", 4: "core", 5: "rss", 6: "nproc", 7: "nofile",
    8: "memlock", 10: "locks", 11: "sigpending", 12: "msgqueue", 13: "nice", 14: "rtprio", 15: "rttime",
}


class DockerExecutor:
    def __init__(self, daemon_id: str, base_url: str | None = None, pool_size: int = 64, gpu_mode: str = "request") -> None:
        self.daemon_id = daemon_id
        # "request": a device request per job (nvidia-container-toolkit); "env": NVIDIA_VISIBLE_DEVICES
        # alone, for engines whose default runtime is nvidia.
        self.gpu_mode = gpu_mode
        self._connection = {"base_url": base_url} if base_url else docker.utils.kwargs_from_env()
        self._client = docker.DockerClient(**self._connection, max_pool_size=pool_size)
        self._api = self._client.api

    def close(self) -> None:
        self._client.close()

    def registry_of(self, image: str) -> str:
        registry, _ = docker.auth.resolve_repository_name(_without_digest_or_tag(image))
        return registry

    def image_present(self, image: str) -> bool:
        try:
            self._api.inspect_image(image)
        except docker.errors.ImageNotFound:
            return False
        return True

    def pull(self, image: str, auth: dict[str, str] | None) -> Iterator[dict[str, Any]]:
        """The engine's progress events while it pulls `image`; raises StartFailure naming the cause."""
        registry = self.registry_of(image)
        try:
            for event in self._api.pull(_pull_reference(image), stream=True, decode=True, auth_config=auth):
                if "error" in event:
                    raise _pull_failure(image, registry, str(event["error"]))
                yield event
        except docker.errors.APIError as exc:
            raise _pull_failure(image, registry, _explain(exc)) from None

    def login(self, registry: str, username: str, password: str) -> None:
        """Check a login with the registry; raises StartFailure when the registry refuses it."""
        # A client of its own: docker-py keeps a login for the later calls of the client that made
        # it, and the shared client's pulls, for other users, must never see it even for a moment.
        client = docker.APIClient(**self._connection)
        try:
            client.login(username=username, password=password, registry=registry, reauth=True)
        except docker.errors.APIError as exc:
            raise _pull_failure(registry, registry, _explain(exc)) from None
        finally:
            client.close()

    @staticmethod
    def _visible_devices(gpus: list[str]) -> dict[str, str]:
        """The GPUs the container may see. A job without GPUs gets "void": CUDA images set
        NVIDIA_VISIBLE_DEVICES=all, which under an nvidia runtime would hand it every GPU on the box."""
        return {"NVIDIA_VISIBLE_DEVICES": ",".join(gpus) if gpus else "void"}

    def create(self, spec: ContainerSpec) -> str:
        options = spec.docker_options
        _check_ports_free(options.get("ports", {}))
        host_config = self._api.create_host_config(
            mounts=[Mount(target=m["destination"], source=m["source"], type="bind", read_only=m["read_only"]) for m in spec.mounts],
            shm_size=options.get("shm_size"),
            ulimits=[Ulimit(name=u["name"], soft=u["soft"], hard=u["hard"]) for u in options.get("ulimits", [])] or None,
            port_bindings=_port_bindings(options.get("ports", {})) or None,
            privileged=options.get("privileged", False),
            network_mode=options.get("network"),
            ipc_mode=options.get("ipc"),
            cap_add=options.get("cap_add"),
            cap_drop=options.get("cap_drop"),
            group_add=options.get("group_add"),
            devices=options.get("devices"),
            security_opt=options.get("security_opt"),
            mem_limit=options.get("mem_limit"),
            nano_cpus=int(options["cpus"] * 1e9) if "cpus" in options else None,
            device_requests=_gpu_requests(spec.gpus) if self.gpu_mode == "request" else None,
            # An init as PID 1 forwards SIGTERM to the task and reaps zombies, so a cancel is prompt.
            init=True,
        )
        try:
            created = self._api.create_container(
                image=spec.image,
                command=spec.command,
                environment={**spec.envs, **self._visible_devices(spec.gpus)},
                user=options.get("user"),
                tty=options.get("tty", False),
                ports=[_port_key(p) for p in options.get("ports", {})] or None,
                labels={LABEL_DAEMON: self.daemon_id, LABEL_JOB: spec.job_id},
                name=f"tao-{spec.job_id}",
                host_config=host_config,
            )
        except docker.errors.ImageNotFound:
            raise ImageMissing(spec.image) from None
        except docker.errors.APIError as exc:
            raise StartFailure(f"the engine refused to create the container: {_explain(exc)}") from None
        return created["Id"]

    def start(self, container_id: str) -> None:
        try:
            self._api.start(container_id)
        except docker.errors.APIError as exc:
            raise _start_failure(exc) from None

    def attach(self, container_id: str, tty: bool) -> OutputStream:
        """The container's stdout and stderr as it writes them, until it exits. Call before `start`.

        The attach stream carries each write() of the task as one frame, where the logs endpoint
        replays line by line from the engine's log file: far fewer frames for a chatty task.
        """
        response = self._api._post(
            self._api._url("/containers/{0}/attach", container_id),
            params={"stdout": 1, "stderr": 1, "stream": 1},
            headers={"Connection": "Upgrade", "Upgrade": "tcp"},
            stream=True,
        )
        sock = self._api._get_raw_response_socket(response)
        self._api._disable_socket_timeout(sock)
        return _AttachedStream(response, sock, tty)

    def output(self, container_id: str) -> OutputStream:
        """The container's output from its first byte, replayed from the engine's log, then followed."""
        return self._api.logs(container_id, stdout=True, stderr=True, stream=True, follow=True)

    def wait(self, container_id: str) -> int:
        return int(self._api.wait(container_id, timeout=None)["StatusCode"])

    def stop(self, container_id: str, timeout: float) -> None:
        try:
            self._api.stop(container_id, timeout=max(0, round(timeout)))
        except docker.errors.NotFound:
            pass

    def remove(self, container_id: str) -> None:
        try:
            self._api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass

    def entrypoint_failure(self, exit_code: int, output_head: bytes) -> StartFailure | None:
        """The init that runs as PID 1 reports an entrypoint it could not exec; name it as docker run would."""
        if exit_code not in (126, 127):
            return None
        match = _INIT_EXEC_FAILURE.match(output_head)
        if match is None:
            return None
        program, reason = (part.decode(errors="replace") for part in match.groups())
        return _exec_failure(program, reason)

    def owned_containers(self) -> list[ContainerState]:
        found = self._api.containers(all=True, filters={"label": f"{LABEL_DAEMON}={self.daemon_id}"})
        states = []
        for summary in found:
            details = self._api.inspect_container(summary["Id"])
            state = details["State"]
            states.append(
                ContainerState(
                    container_id=summary["Id"],
                    job_id=summary["Labels"].get(LABEL_JOB, ""),
                    running=bool(state.get("Running")),
                    # A created-but-never-started container has no meaningful exit code.
                    exit_code=state.get("ExitCode") if state.get("Status") == "exited" else None,
                )
            )
        return states

    def engine_info(self) -> dict[str, Any]:
        version = self._api.version()
        return {"version": version.get("Version"), "api_version": version.get("ApiVersion"), "os": version.get("Os"), "arch": version.get("Arch")}

    def data_root(self) -> str:
        """Where the engine keeps images and containers (DockerRootDir)."""
        return str(self._api.info().get("DockerRootDir") or "/var/lib/docker")

    def image_summary(self, image: str) -> dict[str, Any] | None:
        try:
            details = self._api.inspect_image(image)
        except docker.errors.ImageNotFound:
            return None
        return {"id": details.get("Id"), "size": details.get("Size"), "digests": details.get("RepoDigests", [])}


class _AttachedStream:
    """Payloads of Docker's multiplexed stream (8-byte header: stream, 0, 0, 0, big-endian size), batched per read."""

    def __init__(self, response: Any, sock: Any, tty: bool) -> None:
        self._response = response  # holds the connection open while the socket is read
        self._sock = sock
        self._tty = tty

    def close(self) -> None:
        self._response.close()  # closes the socket under it too
        self._sock.close()

    def __iter__(self) -> Iterator[bytes]:
        buffer = bytearray()
        try:
            while data := self._sock.read(READ_SIZE):
                if self._tty:  # a TTY container's stream is raw bytes
                    yield data
                    continue
                buffer += data
                payloads, consumed = [], 0
                while len(buffer) - consumed >= 8:
                    size = int.from_bytes(buffer[consumed + 4 : consumed + 8], "big")
                    if len(buffer) - consumed - 8 < size:
                        break
                    payloads.append(bytes(buffer[consumed + 8 : consumed + 8 + size]))
                    consumed += 8 + size
                del buffer[:consumed]
                if payloads:
                    yield b"".join(payloads)
        finally:
            self.close()


def _without_digest_or_tag(image: str) -> str:
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def _pull_reference(image: str) -> str:
    """name@digest for a pinned image (a tag beside a digest confuses the pull API), else the reference."""
    if "@" in image:
        return f"{_without_digest_or_tag(image)}@{image.split('@', 1)[1]}"
    return image


def _pull_failure(image: str, registry: str, message: str) -> StartFailure:
    """The engine's pull error as a message that says what went wrong and what to do."""
    lowered = message.lower()
    if any(word in lowered for word in ("unauthorized", "authentication required", "no basic auth credentials", "access denied", "denied:", "incorrect username or password")):
        hint = " (or set NGC_API_KEY for the daemon)" if registry == "nvcr.io" else ""
        return StartFailure(f"registry {registry} refused access to {image} (unauthorized); log in with `tao login {registry}`{hint}")
    if "no space left on device" in lowered:
        return StartFailure(f"the daemon's host ran out of disk space while pulling {image}: {message}")
    if "digest" in lowered and ("mismatch" in lowered or "did not match" in lowered or "verification failed" in lowered):
        return StartFailure(f"digest mismatch for {image}: the registry served content that does not match the pinned digest ({message})")
    if any(word in lowered for word in ("manifest unknown", "not found", "name unknown", "does not exist")):
        return StartFailure(f"image {image} was not found in registry {registry}; check the name, tag or digest in the task manifest ({message})")
    if any(word in lowered for word in ("connection refused", "no such host", "i/o timeout", "dial tcp", "network is unreachable", "tls handshake", "timeout")):
        return StartFailure(f"registry {registry} is unreachable while pulling {image}: {message}")
    return StartFailure(f"cannot pull image {image}: {message}")


def _check_ports_free(ports: dict[str, list[Any]]) -> None:
    """Name a host port that is taken before the engine fails on it with a message about endpoints."""
    for container_port, (address, host_port) in ports.items():
        if host_port is None:
            continue
        protocol = container_port.partition("/")[2]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port left in TIME_WAIT is free
            try:
                probe.bind((address, host_port))
            except OSError as exc:
                raise StartFailure(
                    f"DockerOptions.ports.{container_port}: host port {address}:{host_port} cannot be used "
                    f"({exc.strerror}); choose another port, or null for any free one"
                ) from None


def _port_key(port: str) -> tuple[int, str] | int:
    number, proto = port.split("/")
    return int(number) if proto == "tcp" else (int(number), proto)


def _port_bindings(ports: dict[str, list[Any]]) -> dict[str, tuple[str, int | None]]:
    return {port: (ip, host_port) for port, (ip, host_port) in ports.items()}


def _gpu_requests(gpus: list[str]) -> list[DeviceRequest] | None:
    return [DeviceRequest(device_ids=list(gpus), capabilities=[["gpu"]])] if gpus else None


def _explain(exc: docker.errors.APIError) -> str:
    return str(exc.explanation or exc)


def _exec_failure(program: str, reason: str) -> StartFailure | None:
    lowered = reason.lower()
    if "not found" in lowered or "no such file" in lowered:
        return StartFailure(f"the task's entrypoint {program!r} does not exist in the image ({reason})", exit_code=127)
    if "permission denied" in lowered:
        return StartFailure(f"the task's entrypoint {program!r} cannot be executed ({reason})", exit_code=126)
    return None


def _start_failure(exc: docker.errors.APIError) -> StartFailure:
    """Map the engine's start error to docker run's exit codes and a message naming the cause."""
    message = _explain(exc)
    exec_error = re.search(r'exec: "([^"]*)": (.*?)(?::\s*unknown)?$', message)
    if exec_error and (failure := _exec_failure(*exec_error.groups())):
        return failure
    rlimit = re.search(r"error setting rlimit type (\d+): (operation not permitted|invalid argument)", message)
    if rlimit:
        name = _RLIMIT_NAMES.get(int(rlimit.group(1)), f"type {rlimit.group(1)}")
        return StartFailure(
            f"the engine refused DockerOptions.ulimits.{name}: the host does not allow that limit "
            f"({rlimit.group(2)}); use a value within the host's hard limit"
        )
    return StartFailure(f"the engine could not start the container: {message}")

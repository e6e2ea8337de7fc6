"""What an interactive session needs of a container: its standard input, its terminal size, its ports.

The input is a second attach to the container (stdin only): the job's output keeps coming through
the runner's attach into the job's log, which the session replays and follows like any reader.

A port is reached from inside the container's own network namespace: a thread of the daemon
enters it (setns), makes the socket and connects to the port on the container's loopback, then
leaves. A socket belongs to the namespace it was made in, so the connection stays there, and
nothing is published on the host's network. Entering a namespace takes CAP_SYS_ADMIN, which a
daemon running as root has.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import threading
from typing import Any

import docker

from tao_server.backends.docker.failures import engine_errors
from tao_server.errors import BackendError, LaunchFailure

_CLONE_NEWNET = 0x40000000
RECEIVE_BUFFER = 4 * 1024 * 1024


class DockerTerminal:
    """A container's standard input (a stdin-only attach), and its TTY's size.

    Calls block: run them in a thread. A write blocks for as long as the task does not read its
    input (backpressure, as `docker attach` has), and `close`, from any thread, ends it.
    """

    def __init__(self, api: docker.APIClient, container_id: str) -> None:
        self._api = api
        self._container_id = container_id
        with engine_errors(f"attaching to the input of container {container_id[:12]}"):
            self._attached: Any = api.attach_socket(container_id, params={"stdin": 1, "stream": 1})
        # docker-py hands back the response's SocketIO on a Unix socket, an SSLSocket or socket over TCP.
        self._socket: socket.socket = getattr(self._attached, "_sock", self._attached)
        self._socket.settimeout(None)

    def write(self, data: bytes) -> None:
        with engine_errors(f"writing to the input of container {self._container_id[:12]}"):
            self._socket.sendall(data)

    def end_input(self) -> None:
        with engine_errors(f"closing the input of container {self._container_id[:12]}"):
            self._socket.shutdown(socket.SHUT_WR)

    def resize(self, rows: int, cols: int) -> None:
        with engine_errors(f"resizing the terminal of container {self._container_id[:12]}"):
            self._api.resize(self._container_id, height=rows, width=cols)

    def close(self) -> None:
        """Let go of the input. The socket is shut down first: a write blocked on another thread (a task
        that does not read its input) wakes with an error, which closing the socket alone would not do."""
        try:
            self._socket.shutdown(socket.SHUT_RDWR)
        except OSError:  # the engine closed it already
            pass
        response = getattr(self._attached, "_response", None)
        if response is not None:
            response.close()
        self._attached.close()
        self._socket.close()


def open_namespace(pid: int) -> int:
    """A descriptor of process `pid`'s network namespace: it names that namespace, whatever becomes of the pid."""
    try:
        return os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise BackendError(f"cannot open the container's network namespace (process {pid}): {exc.strerror}") from None


def belongs_to(pid: int, container_id: str) -> bool:
    """Whether process `pid` on this host is in the container's cgroup (`docker-ID.scope`, or `/docker/ID`)."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return container_id in f.read()
    except OSError:
        return False


def connect_in_namespace(namespace: int, port: int, timeout: float) -> socket.socket:
    """A TCP connection to 127.0.0.1:`port` in the network namespace `namespace` (a descriptor from open_namespace)."""
    result: dict[str, Any] = {}
    # A thread of its own: setns moves only the calling thread, and this one ends right after.
    worker = threading.Thread(target=_connect_inside, args=(namespace, port, timeout, result), name="netns-connect", daemon=True)
    worker.start()
    worker.join()
    if "socket" in result:
        sock: socket.socket = result["socket"]
        return sock
    raise result.get("error") or BackendError("could not connect inside the container's network")


def _connect_inside(namespace: int, port: int, timeout: float, result: dict[str, Any]) -> None:
    if _libc().setns(namespace, _CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        hint = "; the daemon needs CAP_SYS_ADMIN to reach a job's ports" if code == errno.EPERM else ""
        result["error"] = BackendError(f"cannot enter the container's network namespace: {os.strerror(code)}{hint}")
        return
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A deep receive buffer, set before the handshake so the window scales to it: the daemon then
    # reads a busy stream in large pieces, and pays its per-piece cost (a frame, a loop turn) less often.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    sock.settimeout(timeout)
    try:
        sock.connect(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        result["error"] = LaunchFailure(f"nothing answers on port {port} inside the job's container ({exc.strerror or exc})")
        return
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    result["socket"] = sock


_LIBC: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC

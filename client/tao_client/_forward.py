"""A port of a job's container reached from this machine: a local listener whose every connection the daemon
carries to the port inside the job (as kubectl port-forward).

On the daemon's Unix socket each connection is made by the daemon inside the job's network and
handed over as a file descriptor: the bytes then go both ways in the kernel (splice), through
neither process. Over TCP each connection has a websocket of its own, and every byte goes
through the daemon. The forward lasts until `close()`; a connection that fails is reported to
`on_error` and closed, and the others go on.
"""

from __future__ import annotations

import socket
import threading

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from collections.abc import Callable

    from tao_client._websocket import WebSocket
    from tao_client.client import Client

COPY_CHUNK = 1024 * 1024
SPLICE_CHUNK = 1024 * 1024


class PortForward:
    """Connections to `local_address`:`local_port` reach `remote_port` inside the job's container."""

    def __init__(
        self,
        client: Client,
        job_id: str,
        remote_port: int,
        local_port: int = 0,
        local_address: str = "127.0.0.1",
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        """Listen now (OSError when the local port cannot be had); connections are carried from then on.

        `local_port` 0: any free port (`local_port` says which). `on_error` hears why a connection failed.
        """
        self._client = client
        self.job_id = job_id
        self.remote_port = remote_port
        self._on_error = on_error or (lambda message: None)
        self._listener = socket.create_server((local_address, local_port), backlog=128)
        self.local_address, self.local_port = local_address, self._listener.getsockname()[1]
        threading.Thread(target=self._accept, name=f"forward-{self.local_port}", daemon=True).start()

    def __enter__(self) -> PortForward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening; connections already carried go on until either side ends them."""
        _wake(self._listener)  # a thread blocked in accept() holds the socket open: shut down, it stops listening and wakes
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # the listener closed
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._carry, args=(connection,), daemon=True).start()

    def _carry(self, connection: socket.socket) -> None:
        """One local connection, both ways: spliced in the kernel to the socket the daemon hands over (its
        Unix socket), else over a websocket of its own (TCP)."""
        from tao_client._errors import TaoClientError

        try:
            if self._client.local:
                splice_both_ways(connection, self._client.port_connection(self.job_id, self.remote_port))
                return
            websocket = self._client.connect_port(self.job_id, self.remote_port)
        except TaoClientError as exc:
            self._on_error(f"port-forward to {self.remote_port}: {exc.message}")
            connection.close()
            return
        upstream = threading.Thread(target=_to_daemon, args=(connection, websocket), daemon=True)
        upstream.start()
        try:
            _from_daemon(websocket, connection, lambda message: self._on_error(f"port-forward to {self.remote_port}: {message}"))
        finally:
            websocket.close()
            _wake(connection)
            upstream.join()
            connection.close()


def splice_both_ways(local: socket.socket, job: socket.socket) -> None:
    """Bytes between two connected sockets, each way in a thread of its own, until both have ended."""
    job.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    upstream = threading.Thread(target=_splice, args=(local, job), daemon=True)
    upstream.start()
    try:
        _splice(job, local)
    finally:
        upstream.join()
        local.close()
        job.close()


def _splice(source: socket.socket, target: socket.socket) -> None:
    """`source`'s bytes into `target` through a pipe (os.splice: no copy through this process), then its EOF."""
    import os

    read_end, write_end = os.pipe()
    try:
        _deepen(write_end)
        while moved := os.splice(source.fileno(), write_end, SPLICE_CHUNK):
            while moved:
                moved -= os.splice(read_end, target.fileno(), moved)
        target.shutdown(socket.SHUT_WR)
    except OSError:
        _wake(source)  # one side broke: end the other direction too
        _wake(target)
    finally:
        os.close(read_end)
        os.close(write_end)


def _deepen(pipe: int) -> None:
    """A pipe of SPLICE_CHUNK, where the kernel allows it (the default is 64 KiB): fewer, larger moves."""
    import fcntl

    try:
        fcntl.fcntl(pipe, 1031, SPLICE_CHUNK)  # F_SETPIPE_SZ
    except OSError:
        pass


def _wake(connection: socket.socket) -> None:
    """Shut the connection down: a thread blocked reading it wakes, which close() alone would not do."""
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _to_daemon(connection: socket.socket, websocket: WebSocket) -> None:
    try:
        while data := connection.recv(COPY_CHUNK):
            websocket.send_binary(data)
        websocket.send_text('{"type": "eof"}')
    except OSError:
        pass  # either side closed: the other thread ends the connection


def _from_daemon(websocket: WebSocket, connection: socket.socket, on_error: Callable[[str], None]) -> None:
    import json

    from tao_client._websocket import BINARY, Closed

    try:
        while True:
            opcode, payload = websocket.receive()
            if opcode == BINARY:
                connection.sendall(payload)
                continue
            message = json.loads(payload)
            if message.get("type") == "eof":
                connection.shutdown(socket.SHUT_WR)
            elif message.get("type") == "error":
                on_error(str(message.get("message")))
    except (Closed, OSError):
        return

"""A scripted HTTP/1.1 server for the client transport's tests: real sockets, exact bytes, no sleeps.

A test lists the answers, one step per request, in the order the client sends its requests. The
server records each request, with the number of the connection it came on, before it answers: once
the client holds an answer, the record of every request before it is complete. Connections the
client hangs up and connections the server closes are reported on queues a test can wait on.
"""

from __future__ import annotations

import queue
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable

from tao_client._http import Transport

WAIT = 30.0  # a safety net only: every wait in these tests ends on an event long before this


class Seen:
    """One request as the server read it."""

    __slots__ = ("body", "connection", "head")

    def __init__(self, connection: int, head: bytes, body: bytes) -> None:
        self.connection = connection
        self.head = head
        self.body = body

    def __repr__(self) -> str:
        return f"Seen({self.connection}, {self.line!r})"

    @property
    def line(self) -> str:
        """The request line: method, target and version."""
        return self.head.split(b"\r\n", 1)[0].decode("latin-1")

    @property
    def headers(self) -> dict[str, str]:
        lines = self.head.decode("latin-1").split("\r\n")[1:]
        return {name: value.strip() for name, _, value in (line.partition(":") for line in lines if line)}


class Peer:
    """The server's end of one connection; steps answer through it."""

    def __init__(self, server: ScriptedServer, number: int, sock: socket.socket) -> None:
        self.server = server
        self.number = number
        self.sock = sock
        self.closed = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self, reset: bool = False) -> None:
        """Close this end: a FIN, or with `reset` a TCP RST. The server then reports it on `closed`."""
        if reset:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.closed = True
        self.sock.close()
        self.server.closed.put(self.number)


Step = Callable[[Peer, Seen], None]


def reply(*parts: bytes, go: queue.Queue[None] | None = None) -> Step:
    """Send `parts` in order; before each part after the first, wait until the test puts on `go`."""

    def step(peer: Peer, _request: Seen) -> None:
        for index, part in enumerate(parts):
            if index and go is not None:
                go.get(timeout=WAIT)
            peer.send(part)

    return step


def reply_and_close(
    *parts: bytes, go: queue.Queue[None] | None = None, after: queue.Queue[None] | None = None, reset: bool = False
) -> Step:
    """As `reply`, then (once the test puts on `after`, when given) close the connection; `reset`: with a TCP RST."""
    send = reply(*parts, go=go)

    def step(peer: Peer, request: Seen) -> None:
        send(peer, request)
        if after is not None:
            after.get(timeout=WAIT)
        peer.close(reset=reset)

    return step


def hang_up() -> Step:
    """Close the connection without answering."""

    def step(peer: Peer, _request: Seen) -> None:
        peer.close()

    return step


class ScriptedServer:
    """Listens on `listener`; answers each request with the next scripted step, each connection in a thread of its own."""

    def __init__(self, listener: socket.socket, base_url: str, socket_path: str | None) -> None:
        self.base_url = base_url
        self.socket_path = socket_path
        self.requests: list[Seen] = []
        self.unexpected: list[Seen] = []  # requests that came after the script ran out
        self.errors: list[BaseException] = []
        self.hangups: queue.Queue[int] = queue.Queue()  # connections the client closed
        self.closed: queue.Queue[int] = queue.Queue()  # connections the server closed
        self._listener = listener
        self._steps: deque[Step] = deque()
        self._lock = threading.Lock()
        self._peers: list[Peer] = []
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._acceptor = threading.Thread(target=self._accept, name="scripted-accept", daemon=True)
        self._acceptor.start()

    def script(self, *steps: Step) -> None:
        with self._lock:
            self._steps.extend(steps)

    def transport(self, token: str | None = None, base_url: str | None = None) -> Transport:
        """A client transport to this server, as `Client` builds one."""
        return Transport(base_url or self.base_url, self.socket_path, WAIT, token=token)

    @property
    def connections(self) -> list[int]:
        """The connection of each request, in order."""
        return [request.connection for request in self.requests]

    @property
    def lines(self) -> list[tuple[int, str]]:
        return [(request.connection, request.line) for request in self.requests]

    @property
    def steps_left(self) -> int:
        with self._lock:
            return len(self._steps)

    def stop(self) -> None:
        self._stopping = True
        with socket.socket(self._listener.family) as waker:  # wakes the blocked accept()
            waker.connect(self._listener.getsockname())
        self._acceptor.join(WAIT)
        self._listener.close()
        with self._lock:
            peers = list(self._peers)
        for peer in peers:
            if not peer.closed:
                try:
                    peer.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in recv()
                except OSError:
                    pass
        for thread in self._threads:
            thread.join(WAIT)
        for peer in peers:
            peer.sock.close()

    def _accept(self) -> None:
        while True:
            sock, _ = self._listener.accept()
            if self._stopping:
                sock.close()
                return
            with self._lock:
                peer = Peer(self, len(self._peers) + 1, sock)
                self._peers.append(peer)
            thread = threading.Thread(target=self._serve, args=(peer,), name=f"scripted-{peer.number}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, peer: Peer) -> None:
        pending = b""
        try:
            while True:
                request, pending = _read_request(peer, pending)
                if request is None:
                    if not peer.closed:
                        self.hangups.put(peer.number)
                    return
                with self._lock:
                    self.requests.append(request)
                    step = self._steps.popleft() if self._steps else None
                if step is None:
                    self.unexpected.append(request)
                    peer.close()
                    return
                step(peer, request)
                if peer.closed:
                    return
        except BaseException as exc:  # noqa: BLE001 - reported to the test by the fixture
            self.errors.append(exc)


def _read_request(peer: Peer, pending: bytes) -> tuple[Seen | None, bytes]:
    """The next request on the connection, or None when the client closed it."""
    while b"\r\n\r\n" not in pending:
        data = _recv(peer)
        if not data:
            return None, b""
        pending += data
    head, _, pending = pending.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:] if line.lower().startswith(b"content-length:")), 0)
    while len(pending) < length:
        data = _recv(peer)
        if not data:
            return None, b""
        pending += data
    return Seen(peer.number, head + b"\r\n\r\n", pending[:length]), pending[length:]


def _recv(peer: Peer) -> bytes:
    try:
        return peer.sock.recv(65536)
    except OSError:
        return b""  # reset by the client, or shut down by stop()

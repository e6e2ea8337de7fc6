"""When the daemon's server says it is ready, and stopping (tao_server.runtime.listeners.TlsAwareServer).

The server runs a bare ASGI app whose lifespan records its steps; each callback records what was
true when it ran, so the order is checked from events, not from timing.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tao_server.runtime.listeners import TlsAwareServer
from tests.conftest import self_signed_certificate

TIMEOUT = 30.0  # a safety net only: each wait ends on an event


class LifespanApp:
    """An ASGI app with nothing but a lifespan, which records its steps in `events`; it fails to start when asked to."""

    def __init__(self, events: list[Any], fail_startup: bool = False) -> None:
        self.events = events
        self.fail_startup = fail_startup

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.events.append("lifespan started")
                await send({"type": "lifespan.startup.failed" if self.fail_startup else "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.events.append("lifespan ended")
                await send({"type": "lifespan.shutdown.complete"})
                return


@pytest.fixture
def listeners(tmp_path: Path) -> Iterator[tuple[socket.socket, socket.socket, ssl.SSLContext]]:
    """A listening Unix socket, a listening TCP socket and a TLS context for it, as `tao-server` makes them."""
    cert, key = self_signed_certificate(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(str(tmp_path / "tao.sock"))
    unix.listen()
    tcp = socket.create_server(("127.0.0.1", 0))
    with unix, tcp:
        yield unix, tcp, tls


def test_ready_comes_after_the_lifespan_with_every_listener_serving_and_stopping_before_they_close(listeners) -> None:  # type: ignore[no-untyped-def]
    unix, tcp, tls = listeners
    events: list[Any] = []

    def ready() -> None:
        events.append(("ready", [server.is_serving() for server in daemon.servers]))
        daemon.should_exit = True  # stop at once: the test has seen what it checks

    def stopping() -> None:
        events.append(("stopping", [server.is_serving() for server in daemon.servers]))

    daemon = TlsAwareServer(uvicorn.Config(LifespanApp(events), log_level="warning"), [tcp], tls, on_ready=ready, on_stopping=stopping)
    daemon.run(sockets=[unix])
    assert events == ["lifespan started", ("ready", [True, True]), ("stopping", [True, True]), "lifespan ended"]


def test_a_failed_start_is_never_reported_ready(listeners) -> None:  # type: ignore[no-untyped-def]
    unix, tcp, tls = listeners
    events: list[Any] = []
    daemon = TlsAwareServer(
        uvicorn.Config(LifespanApp(events, fail_startup=True), log_level="critical"),
        [tcp],
        tls,
        on_ready=lambda: events.append("ready"),
        on_stopping=lambda: events.append("stopping"),
    )
    with pytest.raises(SystemExit):  # uvicorn's own exit when the app cannot start
        daemon.run(sockets=[unix])
    assert events == ["lifespan started"]


SIZES = [0, 1, 125, 126, 65535, 65536, 300_000]  # each side of the header's three length encodings


async def _sends_binary_messages(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app: its lifespan, and a websocket that sends a binary message of each of SIZES, then "done"."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    for size in SIZES:
        await send({"type": "websocket.send", "bytes": _pattern(size)})
    await send({"type": "websocket.send", "text": "done"})
    await send({"type": "websocket.close"})


def _pattern(size: int) -> bytes:
    return bytes(index % 251 for index in range(size))


@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "compressed"])
def test_binary_messages_arrive_byte_for_byte_whatever_their_length(tmp_path: Path, deflate: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's websocket protocol writes a binary frame's header and its message apart; compressed, uvicorn's own way."""
    from websockets.sync.client import unix_connect

    from tao_server.runtime import listeners
    from tao_server.runtime.listeners import WebSocketProtocol

    headers: list[int] = []
    made = listeners._binary_header

    def counted(length: int) -> bytes:
        headers.append(length)
        return made(length)

    monkeypatch.setattr(listeners, "_binary_header", counted)
    path = tmp_path / "ws.sock"
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(str(path))
    unix.listen()
    ready = threading.Event()
    config = uvicorn.Config(_sends_binary_messages, ws=WebSocketProtocol, ws_per_message_deflate=deflate, log_level="warning")
    daemon = TlsAwareServer(config, [], None, on_ready=ready.set)
    serving = threading.Thread(target=daemon.run, kwargs={"sockets": [unix]})
    serving.start()
    try:
        assert ready.wait(TIMEOUT)
        with unix_connect(str(path), "ws://test/", compression="deflate" if deflate else None, max_size=None) as ws:
            received = [ws.recv(timeout=TIMEOUT) for _ in range(len(SIZES) + 1)]
            assert (ws.protocol.extensions != []) is deflate
    finally:
        daemon.should_exit = True
        serving.join(TIMEOUT)
        unix.close()
    assert received == [*(_pattern(size) for size in SIZES), "done"]
    assert headers == ([] if deflate else SIZES)

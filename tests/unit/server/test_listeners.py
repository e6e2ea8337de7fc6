"""When the daemon's server says it is ready, and stopping (tao_server.listeners.TlsAwareServer).

The server runs a bare ASGI app whose lifespan records its steps; each callback records what was
true when it ran, so the order is checked from events, not from timing.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tao_server.listeners import TlsAwareServer
from tests.conftest import self_signed_certificate


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

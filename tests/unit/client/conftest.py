"""Scripted HTTP servers for the transport's tests: one on a Unix socket in tmp_path, one on TCP 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.client.scripted_server import ScriptedServer


def _checked(server: ScriptedServer) -> Iterator[ScriptedServer]:
    try:
        yield server
    finally:
        server.stop()
    assert not server.errors, server.errors
    assert not server.unexpected, f"requests the script did not expect: {server.unexpected}"
    assert server.steps_left == 0, "scripted answers left unused"


@pytest.fixture
def unix_server(tmp_path: Path) -> Iterator[ScriptedServer]:
    path = str(tmp_path / "tao.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    yield from _checked(ScriptedServer(listener, "http://tao", path))


@pytest.fixture
def tcp_server() -> Iterator[ScriptedServer]:
    listener = socket.create_server(("127.0.0.1", 0))
    yield from _checked(ScriptedServer(listener, f"http://127.0.0.1:{listener.getsockname()[1]}", None))


@pytest.fixture(params=["unix", "tcp"])
def server(request: pytest.FixtureRequest) -> ScriptedServer:
    """The same test on the Unix socket and on TCP."""
    fixture: ScriptedServer = request.getfixturevalue(f"{request.param}_server")
    return fixture

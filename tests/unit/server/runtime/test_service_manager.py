"""Notifications to systemd (tao_server.runtime.service_manager), received on a real datagram socket the test binds."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tao_server.runtime.service_manager import ServiceManager


def _receiver(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(30)  # a safety net: the message is already queued when the send returns
    return sock


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify")
    with _receiver(path) as sock:
        yield path, sock


@pytest.fixture
def abstract_socket() -> Iterator[tuple[str, socket.socket]]:
    name = f"tao-test-notify-{uuid.uuid4().hex}"  # the abstract namespace is shared by the whole machine
    with _receiver(b"\0" + name.encode()) as sock:
        yield f"@{name}", sock


def _fields(message: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in message.decode().splitlines())


@pytest.mark.parametrize("kind", ["path_socket", "abstract_socket"])
def test_ready_names_the_addresses_and_the_main_pid(kind: str, request: pytest.FixtureRequest) -> None:
    address, receiver = request.getfixturevalue(kind)
    assert ServiceManager(address).ready(["unix:///run/tao/tao.sock", "https://0.0.0.0:8443"]) is True
    assert _fields(receiver.recv(4096)) == {
        "READY": "1",
        "STATUS": "listening on unix:///run/tao/tao.sock, https://0.0.0.0:8443",
        "MAINPID": str(os.getpid()),
    }


@pytest.mark.parametrize("kind", ["path_socket", "abstract_socket"])
def test_stopping_is_one_message_of_its_own(kind: str, request: pytest.FixtureRequest) -> None:
    address, receiver = request.getfixturevalue(kind)
    manager = ServiceManager(address)
    manager.ready(["unix:///tmp/x.sock"])
    manager.stopping()
    assert _fields(receiver.recv(4096))["READY"] == "1"
    assert _fields(receiver.recv(4096))["STOPPING"] == "1"


@pytest.mark.parametrize("address", [None, ""])
def test_without_notify_socket_nothing_is_sent(address: str | None, caplog: pytest.LogCaptureFixture) -> None:
    assert ServiceManager(address).ready(["unix:///tmp/x.sock"]) is False
    assert ServiceManager(address).stopping() is False
    assert caplog.records == []


@pytest.mark.parametrize("address", ["/nonexistent/notify", "@tao-test-nobody-listens-here", "vsock:2:1234"])
def test_a_failure_to_notify_is_logged_not_raised(address: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tao_server.runtime.service_manager"):
        assert ServiceManager(address).ready(["unix:///tmp/x.sock"]) is False
    [record] = caplog.records
    assert f"cannot notify the service manager at {address}" in record.getMessage()

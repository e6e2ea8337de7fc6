"""The daemon under systemd (Type=notify): READY=1 once every listener answers, STOPPING=1 when it is asked to stop.

The test plays systemd: it binds the datagram socket that $NOTIFY_SOCKET names and reads what the
real `tao-server` sends there.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import socket
import sqlite3
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import self_signed_certificate
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(tmp_path / "notify"))
        yield manager


def next_message(manager: socket.socket, process: subprocess.Popen[bytes]) -> dict[str, str]:
    """The daemon's next notification; an AssertionError at once if the daemon ends without sending one."""
    pidfd = os.pidfd_open(process.pid)  # readable once the process has ended
    try:
        readable, _, _ = select.select([manager.fileno(), pidfd], [], [], 120)  # a safety net, not a bet on speed
    finally:
        os.close(pidfd)
    assert manager.fileno() in readable, f"tao-server sent nothing (exit status {process.poll()})"
    return dict(line.split("=", 1) for line in manager.recv(4096).decode().splitlines())


def test_ready_comes_once_every_listener_answers_and_stopping_when_sigterm_comes(  # type: ignore[no-untyped-def]
    new_daemon, notify_socket: socket.socket, tmp_path: Path
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    port = free_port()
    daemon = new_daemon(
        "--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key), env={"NOTIFY_SOCKET": notify_socket.getsockname()}
    )  # fmt: skip
    process = daemon.launch()

    ready = next_message(notify_socket, process)
    # The dashboard's own listener too: --port serves TLS here, not plain HTTP on loopback.
    status = re.fullmatch(
        rf"listening on {re.escape(daemon.address)}, https://127\.0\.0\.1:{port}, http://127\.0\.0\.1:(\d+)", ready["STATUS"]
    )
    assert status is not None, ready
    assert ready == {"READY": "1", "STATUS": ready["STATUS"], "MAINPID": str(process.pid)}
    # The migrations ran before it: the schema is in place (read from the file, not through the daemon).
    with contextlib.closing(sqlite3.connect(daemon.data_dir / "tao.db")) as db:
        assert db.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
    # One request each, no retries: READY=1 promises that both listeners already accept.
    with daemon.http() as client:
        assert client.get("/healthz").status_code == 200
    trusting = ssl.create_default_context(cafile=str(cert))
    assert httpx.get(f"https://127.0.0.1:{port}/healthz", verify=trusting, timeout=30).status_code == 200
    assert httpx.get(f"http://127.0.0.1:{status.group(1)}/healthz", timeout=30).status_code == 200

    process.send_signal(signal.SIGTERM)
    assert next_message(notify_socket, process)["STOPPING"] == "1"
    assert process.wait(timeout=60) == 0
    assert not daemon.socket.exists()
    assert "cannot notify" not in daemon.server_log()

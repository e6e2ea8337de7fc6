"""`tao port-forward`: a local port reaching a port inside a job's container, through the daemon's connection.

The jobs serve with the test image's busybox: `httpd` for files, `nc -ll -e cat` as an echo
server. Nothing of theirs is published on the host: the daemon connects from inside the
container's network namespace. Each test runs both ways `tao` reaches a daemon: its Unix socket
(the daemon hands the connection itself to `tao`, which splices it in the kernel) and TCP with a
token (a websocket per connection, through the daemon).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tao_server.testing.daemon import Daemon, executable
from tests.conftest import self_signed_certificate
from tests.integration.conftest import free_port, make_daemon, tao_as, until

TIMEOUT = 60


@pytest.fixture(scope="module")
def tcp_daemon(tmp_path_factory: pytest.TempPathFactory, manifest_file: Path, docker_client: Any) -> Iterator[Daemon]:
    """A daemon also on loopback TCP, whose `tcp_env` makes `tao` use it there with root's token.

    Pings every 0.1 s, each to be answered within 0.1 s: a client that did not answer them would
    lose an idle connection within a fraction of a second.
    """
    port = free_port()
    root = tmp_path_factory.mktemp("tcp-daemon")
    running = make_daemon(root, manifest_file, "--port", str(port), env={"TAO_WS_PING_INTERVAL": "0.1"}).start()
    token = running.token("--user", "root", "--uid", "0", "--gid", "0", "--admin")
    running.tcp_env = running.env(TAO_HOST=f"http://127.0.0.1:{port}", TAO_TOKEN=token)  # type: ignore[attr-defined]
    yield running
    running.stop()
    running.remove_containers()


@pytest.fixture(scope="module")
def tls_daemon(tmp_path_factory: pytest.TempPathFactory, manifest_file: Path, docker_client: Any) -> Iterator[Daemon]:
    """A daemon on TCP with TLS: both directions of a forward then share one TLS session, written and read at once."""
    port = free_port()
    root = tmp_path_factory.mktemp("tls-daemon")
    cert, key = self_signed_certificate(root)
    running = make_daemon(root / "daemon", manifest_file, "--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key)).start()
    token = running.token("--user", "root", "--uid", "0", "--gid", "0", "--admin")
    running.tcp_env = running.env(TAO_HOST=f"https://127.0.0.1:{port}", TAO_TOKEN=token, TAO_CA_CERT=str(cert))  # type: ignore[attr-defined]
    yield running
    running.stop()
    running.remove_containers()


@pytest.fixture(params=["unix", "tcp", "tls"])
def via(request: pytest.FixtureRequest, daemon: Daemon) -> tuple[Daemon, dict[str, str]]:
    """(the daemon, the environment `tao port-forward` reaches it with): its Unix socket, TCP with a token, or TLS."""
    if request.param == "unix":
        return daemon, daemon.env()
    remote: Daemon = request.getfixturevalue(f"{request.param}_daemon")
    return remote, remote.tcp_env  # type: ignore[attr-defined]


class Forward:
    """A running `tao port-forward`, and the local port it listens on."""

    def __init__(self, env: dict[str, str], job_id: str, spec: str) -> None:
        self.process = subprocess.Popen(
            [executable("tao"), "port-forward", job_id, spec], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        line = self.process.stdout.readline().decode()  # type: ignore[union-attr]
        assert line.startswith("Forwarding from 127.0.0.1:"), line + self.process.stderr.read().decode()  # type: ignore[union-attr]
        self.port = int(line.split()[2].rpartition(":")[2])

    def get(self, path: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def www(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    root.chmod(0o755)
    (root / "index.html").write_text("hello from the job\n")
    return root


def serve(daemon: Daemon, www: Path, *command: str) -> str:
    mounts = www.parent / "mounts.json"
    mounts.write_text(json.dumps({"Mounts": [{"source": str(www), "destination": "/www", "read_only": True}]}))
    started = daemon.tao("--mounts", str(mounts), "-d", "detectnet_v2", "run", *command)
    assert started.returncode == 0, started.stderr
    job_id = started.stdout.decode().strip()
    daemon.wait_for_status(job_id, ("running",))
    return job_id


@pytest.fixture
def forwards() -> Iterator[list[Forward]]:
    made: list[Forward] = []
    yield made
    for forward in made:
        forward.close()


def test_twenty_concurrent_requests_through_the_forward(via: Any, www: Path, forwards: list[Forward], docker_client: Any) -> None:
    daemon, env = via
    job_id = serve(daemon, www, "httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/www")
    forward = Forward(env, job_id, ":8080")
    forwards.append(forward)
    # httpd may still be binding its port: the first answer is awaited, never assumed.
    until(lambda: _answers(forward), "httpd answers through the forward", timeout=TIMEOUT)
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: forward.get("/index.html"), range(20)))
    assert answers == [(200, b"hello from the job\n")] * 20
    container = docker_client.api.inspect_container(daemon.job(job_id)["container_id"])
    assert not container["HostConfig"]["PortBindings"]  # nothing published on the host for this
    assert daemon.tao("stop", job_id).returncode == 0


def test_the_local_port_closes_when_the_job_ends(via: Any, www: Path, forwards: list[Forward]) -> None:
    daemon, env = via
    job_id = serve(daemon, www, "httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/www")
    forward = Forward(env, job_id, "0:8080")
    forwards.append(forward)
    until(lambda: _answers(forward), "httpd answers through the forward", timeout=TIMEOUT)
    assert daemon.tao("stop", job_id).returncode == 0
    assert forward.process.wait(timeout=TIMEOUT) == 0
    assert f"job {job_id} ended (cancelled)" in forward.process.stderr.read().decode()  # type: ignore[union-attr]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", forward.port), timeout=TIMEOUT).close()


def test_a_hundred_megabytes_arrive_byte_for_byte(via: Any, www: Path, forwards: list[Forward]) -> None:
    daemon, env = via
    blob = os.urandom(100 * 1024 * 1024)
    (www / "blob").write_bytes(blob)
    job_id = serve(daemon, www, "httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/www")
    forward = Forward(env, job_id, ":8080")
    forwards.append(forward)
    until(lambda: _answers(forward), "httpd answers through the forward", timeout=TIMEOUT)
    status, body = forward.get("/blob")
    assert status == 200
    assert len(body) == len(blob) and hashlib.sha256(body).digest() == hashlib.sha256(blob).digest()
    assert daemon.tao("stop", job_id).returncode == 0


def test_an_idle_connection_outlives_many_pings_and_carries_a_half_close(via: Any, www: Path, forwards: list[Forward]) -> None:
    daemon, env = via
    job_id = serve(daemon, www, "nc", "-ll", "-p", "9000", "-e", "cat")
    forward = Forward(env, job_id, ":9000")
    forwards.append(forward)
    connection = _echo_connection(forward.port)
    with connection:
        connection.sendall(b"first\n")
        assert _read_line(connection) == b"first\n"
        time.sleep(2)  # over TCP, twenty of the daemon's ping intervals with nothing to carry
        connection.sendall(b"second\n")
        assert _read_line(connection) == b"second\n"
        connection.shutdown(socket.SHUT_WR)  # the echo server sees its input end, and ends the stream
        assert connection.recv(100) == b""
    assert daemon.tao("stop", job_id).returncode == 0


def test_another_users_forward_is_refused(shared_daemon: Daemon, www: Path, unprivileged_user: tuple[str, int, int]) -> None:
    job_id = serve(shared_daemon, www, "httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/www")
    refused = tao_as(shared_daemon, unprivileged_user, "port-forward", job_id, ":8080")
    assert refused.returncode == 125
    assert f"no job {job_id!r}" in refused.stderr.decode()
    assert b"Forwarding" not in refused.stdout  # refused before anything listened
    assert shared_daemon.tao("stop", job_id).returncode == 0


def test_nothing_listening_on_the_port_is_said_per_connection(via: Any, www: Path, forwards: list[Forward]) -> None:
    daemon, env = via
    job_id = serve(daemon, www, "sleep", "600")
    forward = Forward(env, job_id, ":8080")
    forwards.append(forward)
    with socket.create_connection(("127.0.0.1", forward.port), timeout=TIMEOUT) as connection:
        assert connection.recv(100) == b""  # closed, with the reason on tao's stderr
    assert daemon.tao("stop", job_id).returncode == 0
    assert forward.process.wait(timeout=TIMEOUT) == 0
    assert "nothing answers on port 8080" in forward.process.stderr.read().decode()  # type: ignore[union-attr]


def _answers(forward: Forward) -> bool:
    try:
        return forward.get("/index.html")[0] == 200
    except (OSError, http.client.HTTPException):
        return False


def _echo_connection(port: int) -> socket.socket:
    """A connection through the forward once the echo server answers (nc may still be starting)."""
    found: list[socket.socket] = []

    def answered() -> bool:
        connection = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        connection.sendall(b"ping\n")
        try:
            if _read_line(connection) == b"ping\n":
                found.append(connection)
                return True
        except OSError:
            pass
        connection.close()
        return False

    until(answered, "the echo server answers through the forward", timeout=TIMEOUT)
    return found[0]


def _read_line(connection: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        more = connection.recv(100)
        if not more:
            return line
        line += more
    return line

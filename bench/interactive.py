"""Interactive sessions through the daemon against Docker's own path (figures 22, 23).

22: keystroke echo latency on a task's terminal: one key written to the pseudo-terminal `tao`
    runs on, to its echo read back there (the echo made by the container's own terminal, so
    both paths end at the same place), against `docker exec -it` into the same container;
    the two sessions open side by side and alternate key by key.
23: bytes a second through `tao port-forward`, against a direct connection to the same port made
    inside the container's network namespace; the same file from busybox httpd, read the same
    way, the three in turn. 23a: on the daemon's Unix socket (the daemon hands the connection to
    `tao`, which splices it in the kernel); 23b: over TCP with a token (a websocket per
    connection, every byte through the daemon).
"""

from __future__ import annotations

import json
import os
import select
import socket
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import Daemon, Figure, alternate, bench_daemon, percentile, tool

GROUPS = ("22", "23")  # what bench/run.py asks of this module
READ_BUFFER = 1024 * 1024


@dataclass
class SessionScale:
    keys: int
    forward_bytes: int
    transfers: int

    @classmethod
    def full(cls) -> SessionScale:
        return cls(keys=1000, forward_bytes=512 * 1024**2, transfers=5)

    @classmethod
    def quick(cls) -> SessionScale:
        return cls(keys=50, forward_bytes=16 * 1024**2, transfers=2)


def run_group(group: str, scale: SessionScale) -> list[Figure]:
    if group == "22":
        daemon = bench_daemon().start()
        try:
            return [echo_latency(daemon, scale)]
        finally:
            daemon.discard()
    port = _free_port()
    daemon = bench_daemon("--port", str(port)).start()
    try:
        return forward_throughput(daemon, port, scale)
    finally:
        daemon.discard()


# -- 20: echo ---------------------------------------------------------------------------------------


def echo_latency(daemon: Daemon, scale: SessionScale) -> Figure:
    import pexpect

    # `cat` on a terminal in canonical mode: the container's terminal echoes each key at once.
    # READY comes from inside the container: before it, keys could be echoed by the local terminal.
    command = ["sh", "-c", "echo READY; exec cat"]
    ours = pexpect.spawn(tool("tao"), ["detectnet_v2", "run", *command], env=daemon.env(), dimensions=(40, 120), timeout=60)
    docker = None
    try:
        ours.expect_exact("READY")
        job = next(j for j in daemon.request("GET", "/v1/jobs?status=running")["jobs"])
        docker = pexpect.spawn("docker", ["exec", "-it", job["container_id"], *command], dimensions=(40, 120), timeout=60)
        docker.expect_exact("READY")
        _drain(ours.child_fd)
        _drain(docker.child_fd)
        tao_samples, docker_samples = alternate(scale.keys, lambda: _echo(ours.child_fd), lambda: _echo(docker.child_fd))
    finally:
        for child in (ours, docker):
            if child is not None:
                child.sendcontrol("d")
                child.close(force=True)
    gap = percentile(tao_samples, 0.99) - percentile(docker_samples, 0.99)
    return Figure(
        "22",
        "keystroke echo through tao's terminal (p99 vs docker exec -it, same container)",
        "s",
        tao_samples,
        "p99 within 5 ms of docker exec -it",
        gap <= 0.005,
        baseline=docker_samples,
        baseline_name="docker exec -it",
        extra={"p99": round(percentile(tao_samples, 0.99), 6), "baseline_p99": round(percentile(docker_samples, 0.99), 6)},
    )


def _echo(fd: int) -> float:
    started = time.perf_counter()
    os.write(fd, b"k")
    seen = b""
    while b"k" not in seen:
        ready, _, _ = select.select([fd], [], [], 10)
        if not ready:
            raise RuntimeError("a key was never echoed")
        seen += os.read(fd, 4096)
    return time.perf_counter() - started


def _drain(fd: int) -> None:
    while select.select([fd], [], [], 0.05)[0]:
        os.read(fd, 65536)


# -- 21: forward --------------------------------------------------------------------------------------


def forward_throughput(daemon: Daemon, tcp_port: int, scale: SessionScale) -> list[Figure]:
    from tao_server.backends.docker.session import connect_in_namespace, open_namespace

    www = Path(tempfile.mkdtemp(prefix="tao-bench-www-"))
    www.chmod(0o755)
    blob = www / "blob"
    with open(blob, "wb") as f:
        f.truncate(scale.forward_bytes)  # a sparse file: httpd reads zeros, no disk in the way
    mounts = www / "mounts.json"
    mounts.write_text(json.dumps({"Mounts": [{"source": str(www), "destination": "/www", "read_only": True}]}))
    started = daemon.tao("--mounts", str(mounts), "-d", "detectnet_v2", "run", "httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/www")
    job_id = started.stdout.decode().strip()
    token = daemon.token("--user", "root", "--uid", "0", "--gid", "0", "--admin")
    forwards: list[subprocess.Popen[bytes]] = []
    namespace = None
    try:
        job = daemon.wait_for_status(job_id, ("running",))
        pid = int(subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", job["container_id"]], capture_output=True, text=True).stdout)
        namespace = open_namespace(pid)
        ways = {"direct": lambda: connect_in_namespace(namespace, 8080, 10)}
        for name, env in (("unix", daemon.env()), ("tcp", daemon.env(TAO_HOST=f"http://127.0.0.1:{tcp_port}", TAO_TOKEN=token))):
            forward = subprocess.Popen([tool("tao"), "port-forward", job_id, ":8080"], env=env, stdout=subprocess.PIPE)
            forwards.append(forward)
            local = int(forward.stdout.readline().decode().split()[2].rpartition(":")[2])  # type: ignore[union-attr]
            ways[name] = lambda local=local: socket.create_connection(("127.0.0.1", local))  # type: ignore[misc]
        for connect in ways.values():
            _until(lambda connect=connect: _answers(lambda: _download(connect, scale.forward_bytes)))
        rates: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(scale.transfers):  # in turn, so drift on a noisy machine hits each alike
            for name, connect in ways.items():
                rates[name].append(_download(connect, scale.forward_bytes))
    finally:
        if namespace is not None:
            os.close(namespace)
        for forward in forwards:
            forward.kill()
            forward.wait()
        daemon.tao("stop", job_id)
        blob.unlink()
        mounts.unlink()
        www.rmdir()
    size = f"{scale.forward_bytes // 1024**2} MiB from httpd"
    return [
        _forward_figure(
            "23a", f"tao port-forward on the Unix socket (connection handed over, spliced), {size}", rates["unix"], rates["direct"]
        ),
        _forward_figure(
            "23b", f"tao port-forward over TCP with a token (websocket through the daemon), {size}", rates["tcp"], rates["direct"]
        ),
    ]


def _forward_figure(number: str, name: str, rates: list[float], direct: list[float]) -> Figure:
    ratio = statistics.median(rates) / statistics.median(direct)
    return Figure(number, name, "MB/s", rates, "at least 0.5x direct", ratio >= 0.5, baseline=direct, baseline_name="direct")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _download(connect: Any, size: int) -> float:
    """MB a second for one GET of the blob, its whole body read into one reused buffer."""
    buffer = bytearray(READ_BUFFER)
    view = memoryview(buffer)
    started = time.perf_counter()
    with connect() as connection:
        connection.sendall(b"GET /blob HTTP/1.0\r\nHost: bench\r\n\r\n")
        received = 0
        while count := connection.recv_into(view):
            received += count
    elapsed = time.perf_counter() - started
    if received < size:
        raise RuntimeError(f"the download ended after {received} of {size} bytes")
    return size / elapsed / 1e6


def _answers(download: Any) -> bool:
    try:
        download()
        return True
    except (OSError, RuntimeError):
        return False


def _until(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("the job's server never answered through the forward")
        time.sleep(0.1)

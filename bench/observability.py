"""GET /metrics as Prometheus scrapes it, on a daemon with a table of jobs (figure 27).

The daemon listens on loopback TCP beside its socket, with eight placeholder GPUs (`--gpu-mode env`);
its table holds the scale's ended jobs (succeeded, failed, cancelled in turn), and the scale's
running jobs each hold a GPU and have a status file the daemon follows, so the exposition has
every family: jobs by status, the queue, the GPUs, a progress gauge per running job, the process.

27a: GET /metrics over loopback TCP with a scrape token, on one kept-alive connection, one after
     another (each scrape pays the token's look-up, as Prometheus's do).
27b: the same on the Unix socket as the daemon's user (no token), for comparison.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import figures
from harness import Daemon, Figure, bench_daemon, percentile, unix_connection

GROUPS = ("27",)  # what bench/run.py asks of this module
GPUS = 8


@dataclass
class MetricsScale:
    jobs: int
    running: int
    scrapes: int

    @classmethod
    def full(cls) -> MetricsScale:
        return cls(jobs=1000, running=GPUS, scrapes=1000)

    @classmethod
    def quick(cls) -> MetricsScale:
        return cls(jobs=1000, running=2, scrapes=100)


def run_group(group: str, scale: MetricsScale, manifest: Path | None = None) -> list[Figure]:
    port = _free_port()
    gpus = ",".join(str(index) for index in range(GPUS))
    daemon = bench_daemon("--host", "127.0.0.1", "--port", str(port), "--gpus", gpus, "--gpu-mode", "env", manifest=manifest)
    try:
        daemon.start()
        daemon.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        daemon.process.wait()  # type: ignore[union-attr]
        figures.fill_table(daemon.data_dir / "tao.db", scale.jobs, statuses=("succeeded", "failed", "cancelled"))
        daemon.start()
        token = daemon.token("--scrape", "--user", "bench")
        running = [_training_job(daemon, index) for index in range(scale.running)]
        return scrapes(daemon, port, token, scale, running)
    finally:
        daemon.discard()


def scrapes(daemon: Daemon, port: int, token: str, scale: MetricsScale, running: list[str]) -> list[Figure]:
    tcp = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    over_tcp = [_scrape(tcp, {"Authorization": f"Bearer {token}"}, running) for _ in range(scale.scrapes)]
    tcp.close()
    unix = unix_connection(daemon.socket, timeout=30)
    over_socket = [_scrape(unix, {}, running) for _ in range(scale.scrapes)]
    unix.close()
    size = len(_body(port, token))
    p99, socket_p99 = percentile(over_tcp, 0.99), percentile(over_socket, 0.99)
    described = f"{scale.jobs} ended jobs, {len(running)} running with progress, {GPUS} GPUs"
    return [
        Figure(
            "27a",
            f"GET /metrics over loopback TCP with a scrape token, {described}",
            "s",
            over_tcp,
            "p99 < 50 ms",
            p99 < 0.050,
            extra={"p99": round(p99, 6), "exposition_bytes": size},
        ),
        Figure(
            "27b",
            f"GET /metrics on the Unix socket, {described}",
            "s",
            over_socket,
            "(reported)",
            None,
            extra={"p99": round(socket_p99, 6)},
        ),
    ]


def _scrape(connection: http.client.HTTPConnection, headers: dict[str, str], running: list[str]) -> float:
    started = time.perf_counter()
    connection.request("GET", "/metrics", headers={"Accept": "text/plain", **headers})
    response = connection.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200 or body.count(b"tao_job_progress_ratio{") != len(running):
        raise RuntimeError(f"GET /metrics: {response.status} {body[:300]!r}")
    return elapsed


def _body(port: int, token: str) -> bytes:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
    body = connection.getresponse().read()
    connection.close()
    return body


def _training_job(daemon: Daemon, index: int) -> str:
    """A job that holds a GPU and sleeps, its results dir mounted, with one status line the daemon has read."""
    workspace = daemon.root / f"workspace{index}"
    (workspace / "results").mkdir(parents=True)
    body = {
        "task": "detectnet_v2",
        "subtask": "run",
        "args": ["sh", "-c", "sleep 3600", "sh", "--results_dir", "/workspace/results"],
        "launch_config": {"Mounts": [{"source": str(workspace), "destination": "/workspace"}]},
        "gpus": "1",
    }
    job_id: str = daemon.request("POST", "/v1/jobs", body)["id"]
    daemon.wait_for_status(job_id, ("running",), timeout=120)
    line = {"epoch": index + 1, "max_epoch": 80, "status": "RUNNING", "message": "Training loop in progress", "graphical": {"loss": 0.5}}
    _append(workspace / "results" / "status.json", line)
    deadline = time.monotonic() + 60
    while (daemon.job(job_id).get("progress") or {}).get("epoch") != index + 1:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the daemon never showed job {job_id}'s status line")
        time.sleep(0.05)
    return job_id


def _append(path: Path, line: dict[str, object]) -> None:
    with path.open("a") as file:
        file.write(json.dumps(line) + "\n")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port

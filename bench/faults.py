"""Figures 10-14: restarts, engine outages, bursts, hostile bodies and the GPU hand-off.

Each runs against a real daemon and engine, as the other figures do; the engine outage goes
through the relay the tests use (tao_server.testing.engine_proxy).
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import Daemon, Figure, bench_daemon, percentile, rss_mb, unix_connection

from tao_server.testing.engine_proxy import EngineProxy

TICKS = {"task": "detectnet_v2", "subtask": "ticks", "args": ["1000000", "0.05"]}


@dataclass
class FaultScale:
    restarts: int
    running_jobs: int
    outage_seconds: float
    burst_jobs: int
    burst_clients: int
    hostile_mb: int
    handoffs: int

    @classmethod
    def full(cls) -> FaultScale:
        return cls(restarts=3, running_jobs=10, outage_seconds=5, burst_jobs=1000, burst_clients=100, hostile_mb=300, handoffs=10)

    @classmethod
    def quick(cls) -> FaultScale:
        return cls(restarts=1, running_jobs=2, outage_seconds=0.5, burst_jobs=100, burst_clients=10, hostile_mb=20, handoffs=2)


def restart(scale: FaultScale) -> list[Figure]:
    """kill -9 the daemon under N running jobs, start it again: time to answering, and to every job followed again."""
    answering, followed = [], []
    daemon = bench_daemon().start()
    try:
        jobs = [daemon.request("POST", "/v1/jobs", TICKS)["id"] for _ in range(scale.running_jobs)]
        for job_id in jobs:
            daemon.wait_for_output(job_id, b"tick 2\n", timeout=600)
        for _ in range(scale.restarts):
            daemon.stop(signal.SIGKILL)
            sizes = {job_id: _log_size(daemon, job_id) for job_id in jobs}
            started = time.perf_counter()
            daemon.launch()  # timed here, on a finer clock than Daemon.start's
            _until(lambda: _answers(daemon))
            answering.append(time.perf_counter() - started)
            _until(_all_grew(daemon, sizes))
            followed.append(time.perf_counter() - started)
    finally:
        daemon.discard()
    n = scale.running_jobs
    return [
        Figure("10a", f"daemon restart with {n} running jobs: to answering", "s", answering, "< 1.5 s", max(answering) < 1.5),
        Figure("10b", f"daemon restart with {n} running jobs: to all followed again", "s", followed, "< 2 s", max(followed) < 2.0),
    ]


def outage(scale: FaultScale) -> Figure:
    """Cut the engine off for a while under N running jobs: jobs lost, lines lost or doubled, exit codes."""
    proxy = EngineProxy(Path(tempfile.mkdtemp(prefix="tao-bench-engine-")) / "docker.sock")
    daemon = bench_daemon(env={"TAO_DOCKER_HOST": proxy.address}).start()
    try:
        ticks = {**TICKS, "args": ["1000000", "0.01"]}
        jobs = [daemon.request("POST", "/v1/jobs", ticks)["id"] for _ in range(scale.running_jobs)]
        for job_id in jobs:
            daemon.wait_for_output(job_id, b"tick 5\n", timeout=600)
        with proxy.outage():
            time.sleep(scale.outage_seconds)
        sizes = {job_id: _log_size(daemon, job_id) for job_id in jobs}
        _until(lambda: all(_log_size(daemon, job_id) > sizes[job_id] + 100 for job_id in jobs), timeout=120)
        for job_id in jobs:
            daemon.request("POST", f"/v1/jobs/{job_id}/cancel")
        finals = [daemon.wait_for_status(job_id, ("succeeded", "failed", "cancelled", "error"), timeout=120) for job_id in jobs]
        lost = sum(1 for job in finals if job["status"] != "cancelled")
        codes_right = all(job["exit_code"] == 143 for job in finals)
        broken = sum(1 for job_id in jobs if not _consecutive(daemon, job_id))
    finally:
        daemon.discard()
        proxy.close()
    figure = Figure(
        "11",
        f"engine outage of {scale.outage_seconds:g} s with {scale.running_jobs} running jobs: jobs lost",
        "jobs",
        [float(lost)],
        "0 lost, 0 lines lost or doubled, exit codes right",
        lost == 0 and broken == 0 and codes_right,
        extra={"jobs_with_lines_lost_or_doubled": broken, "exit_codes_right": codes_right},
    )
    return figure


def burst(scale: FaultScale) -> Figure:
    """N submissions from M clients at once (jobs held queued), while a prober times GET /healthz."""
    daemon = bench_daemon("--max-running-jobs", "1").start()
    try:
        blocker = daemon.request("POST", "/v1/jobs", {"task": "detectnet_v2", "subtask": "sleep", "args": ["900"]})
        daemon.wait_for_status(blocker["id"], ("running",), timeout=600)
        probes: list[float] = []
        done = threading.Event()
        prober = threading.Thread(target=_probe_health, args=(daemon, probes, done))
        failures: list[int] = []
        per_client = scale.burst_jobs // scale.burst_clients
        clients = [threading.Thread(target=_submit_many, args=(daemon, per_client, failures)) for _ in range(scale.burst_clients)]
        prober.start()
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        done.set()
        prober.join()
    finally:
        daemon.discard()
    p99 = percentile(probes, 0.99)
    return Figure(
        "12",
        f"{scale.burst_jobs} submissions from {scale.burst_clients} clients: GET /healthz during the burst",
        "s",
        probes,
        "0 failures; p99 < 50 ms, max < 250 ms",
        not failures and p99 < 0.050 and max(probes) < 0.250,
        extra={"failures": len(failures), "p99": round(p99, 6), "probes": len(probes)},
    )


def hostile_body(scale: FaultScale) -> Figure:
    """RSS of the daemon after a body of many MB is sent to it (declared, then chunked), against idle."""
    daemon = bench_daemon().start()
    try:
        assert daemon.process is not None
        idle = rss_mb(daemon.process.pid)
        size = scale.hostile_mb * 1024**2
        declared = b"POST /v1/jobs HTTP/1.1\r\nHost: tao\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % size
        statuses = [_status(daemon.send_raw(declared, (b"x" * 1024**2 for _ in range(scale.hostile_mb))))]
        chunked = b"POST /v1/jobs HTTP/1.1\r\nHost: tao\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        statuses.append(_status(daemon.send_raw(chunked, (b"100000\r\n" + b"y" * 1024**2 + b"\r\n" for _ in range(scale.hostile_mb)))))
        after = rss_mb(daemon.process.pid)
    finally:
        daemon.discard()
    growth = after - idle
    return Figure(
        "13",
        f"RSS after a {scale.hostile_mb} MB POST (declared and chunked), above idle",
        "MB",
        [growth],
        "refused; within 10 MB of idle",
        statuses == [413, 413] and growth < 10,
        extra={"answers": statuses, "idle_mb": round(idle, 1), "after_mb": round(after, 1)},
    )


def gpu_handoff(scale: FaultScale) -> Figure:
    """From a GPU job's container exiting to the next queued GPU job's container starting, by the engine's clock."""
    daemon = bench_daemon("--gpus", "0", "--gpu-mode", "env").start()
    pairs = []
    since = time.time()
    try:
        for _ in range(scale.handoffs):
            first = daemon.request("POST", "/v1/jobs", {"task": "detectnet_v2", "subtask": "sleep", "args": ["0.5"], "gpus": "1"})
            second = daemon.request("POST", "/v1/jobs", {"task": "detectnet_v2", "subtask": "exit", "args": ["0"], "gpus": "1"})
            daemon.wait_for_status(second["id"], ("succeeded",), timeout=600)
            pairs.append((first["id"], second["id"]))
        events = _engine_events(since, time.time() + 1)
    finally:
        daemon.discard()
    samples = [(events[(second, "start")] - events[(first, "die")]) / 1e9 for first, second in pairs]
    median = statistics.median(samples)
    return Figure(
        "14", "GPU hand-off: a GPU job's exit to the next queued GPU job's container started", "s", samples, "< 150 ms", median < 0.150
    )


# -- helpers ------------------------------------------------------------------------------------------


def _engine_events(since: float, until: float) -> dict[tuple[str, str], int]:
    """(job id, "die" or "start") -> the engine's time in ns: the daemon removes containers, `docker events` keeps their times."""
    listed = subprocess.run(
        ["docker", "events", "--since", f"{since:.3f}", "--until", f"{until:.3f}", "--filter", "type=container", "--format", "{{json .}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    times = {}
    for line in listed.splitlines():
        event = json.loads(line)
        job_id = event.get("Actor", {}).get("Attributes", {}).get("org.tao-launcher.job")
        if job_id and event.get("Action") in ("die", "start"):
            times[(job_id, event["Action"])] = int(event["timeNano"])
    return times


def _all_grew(daemon: Daemon, sizes: dict[str, int]) -> Callable[[], bool]:
    """Whether every job's log has grown past the size it had: each job is followed again."""
    return lambda: all(_log_size(daemon, job_id) > size for job_id, size in sizes.items())


def _log_size(daemon: Daemon, job_id: str) -> int:
    path = daemon.data_dir / "logs" / f"{job_id}.log"
    return path.stat().st_size if path.exists() else 0


def _consecutive(daemon: Daemon, job_id: str) -> bool:
    lines = (daemon.data_dir / "logs" / f"{job_id}.log").read_text().splitlines()
    return bool(lines) and lines[-1] == "got SIGTERM" and lines[:-1] == [f"tick {n}" for n in range(1, len(lines))]


def _answers(daemon: Daemon) -> bool:
    try:
        status, _ = _get(daemon, "/healthz")
    except OSError:
        return False
    return status == 200


def _get(daemon: Daemon, path: str) -> tuple[int, bytes]:
    connection = unix_connection(daemon.socket, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _until(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("the condition never held")
        time.sleep(0.002)


def _probe_health(daemon: Daemon, probes: list[float], done: threading.Event) -> None:
    connection = unix_connection(daemon.socket, timeout=30)
    while not done.is_set():
        started = time.perf_counter()
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        response.read()
        probes.append(time.perf_counter() - started)
        time.sleep(0.01)
    connection.close()


def _submit_many(daemon: Daemon, count: int, failures: list[int]) -> None:
    connection = unix_connection(daemon.socket, timeout=120)
    body = json.dumps({"task": "detectnet_v2", "subtask": "exit", "args": ["0"]}).encode()
    for _ in range(count):
        connection.request("POST", "/v1/jobs", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        if response.status != 201:
            failures.append(response.status)
    connection.close()


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0

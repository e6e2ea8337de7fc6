"""The eight benchmark figures. Each compares the launcher with plain Docker measured in the same run."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from harness import IMAGE, Daemon, Figure, alternate, bench_daemon, percentile, rss_mb, timed, tool, unix_connection

GROUPS = ("1", "2", "3", "4", "5", "6", "7", "9")  # what bench/run.py asks of this module
LINE = "0123456789 the quick brown fox jumps over the lazy dog 0123456789\n"  # 64 bytes + newline


@dataclass
class Scale:
    runs: int
    ctrl_c_runs: int
    submissions: int
    start_jobs: int
    log_bytes: int
    followers: int
    follower_bytes: int
    table_jobs: int
    list_requests: int
    pulls: int
    pull_layer_bytes: int

    @classmethod
    def full(cls) -> Scale:
        return cls(20, 5, 3000, 200, 1024**3, 50, 64 * 1024**2, 100_000, 500, 5, 256 * 1024**2)

    @classmethod
    def quick(cls) -> Scale:
        return cls(3, 1, 200, 20, 16 * 1024**2, 5, 4 * 1024**2, 2_000, 50, 1, 8 * 1024**2)


def startup(daemon: Daemon, scale: Scale) -> list[Figure]:
    tao, env = tool("tao"), daemon.env()
    figures = []
    for number, argv in (("1a", ["--help"]), ("1b", ["list"])):
        samples = [timed([tao, *argv], env) for _ in range(scale.runs)]
        median = sorted(samples)[len(samples) // 2]
        figures.append(Figure(number, f"tao {' '.join(argv)} wall time", "s", samples, "< 0.150 s", median < 0.150))
    return figures


def trivial_task(daemon: Daemon, scale: Scale) -> Figure:
    tao, env = tool("tao"), daemon.env()
    ours, docker = alternate(
        scale.runs,
        lambda: timed([tao, "detectnet_v2", "exit", "0"], env),
        lambda: timed(["docker", "run", "--rm", IMAGE, "detectnet_v2", "exit", "0"]),
    )
    figure = Figure("2", "trivial task: tao vs docker run --rm", "s", ours, "ratio <= 1.3", None, baseline=docker)
    figure.met = figure.summary()["ratio"] <= 1.3
    return figure


def ctrl_c(daemon: Daemon, scale: Scale) -> Figure:
    """SIGINT to `tao` during a task that honours SIGTERM, until the container no longer exists."""
    import docker

    client = docker.from_env()
    samples, exits = [], []
    for run in range(scale.ctrl_c_runs):
        process = subprocess.Popen(
            [tool("tao"), "detectnet_v2", "sleep", str(900 + run)],
            env=daemon.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert process.stdout is not None
        process.stdout.readline()  # "sleeping N": the task runs
        job = next(j for j in daemon.request("GET", "/v1/jobs?status=running")["jobs"] if j["args"] == [str(900 + run)])
        started = time.perf_counter()
        process.send_signal(signal.SIGINT)
        while client.api.containers(all=True, filters={"label": f"org.tao-launcher.job={job['id']}"}):
            time.sleep(0.005)
        samples.append(time.perf_counter() - started)
        process.wait(timeout=30)
        exits.append(process.returncode)
    client.close()
    median = sorted(samples)[len(samples) // 2]
    return Figure("3", "Ctrl-C to container gone", "s", samples, "< 2 s", median < 2.0, extra={"tao_exit_codes": exits})


def submissions(scale: Scale) -> Figure:
    """POST /v1/jobs from 8 concurrent keep-alive clients while every job stays queued."""
    daemon = bench_daemon("--max-running-jobs", "1").start()
    try:
        blocker = daemon.request("POST", "/v1/jobs", {"task": "detectnet_v2", "subtask": "sleep", "args": ["900"]})
        daemon.wait_for_status(blocker["id"], ("running",), timeout=600)
        per_client = scale.submissions // 8
        rates = []
        # Eight client processes, as eight users would be: threads in one process would share its GIL.
        with multiprocessing.get_context("fork").Pool(8) as pool:
            for _ in range(3):
                spans = pool.starmap(_post_many, [(str(daemon.socket), per_client)] * 8)
                rates.append(8 * per_client / (max(end for _, end in spans) - min(start for start, _ in spans)))
        queued = daemon.request("GET", "/v1/jobs?status=queued&limit=1")["jobs"]
        return Figure(
            "4",
            "submissions accepted per second (8 clients)",
            "jobs/s",
            rates,
            ">= 300/s",
            min(rates) >= 300,
            extra={"jobs_per_round": 8 * per_client, "still_queued": bool(queued)},
        )
    finally:
        daemon.discard()


def _post_many(socket_path: str, count: int) -> tuple[float, float]:
    """POST `count` jobs on one kept-alive connection; (start, end) on the shared monotonic clock."""

    started = time.monotonic()
    connection = unix_connection(socket_path)
    body = json.dumps({"task": "detectnet_v2", "subtask": "exit", "args": ["0"]}).encode()
    for _ in range(count):
        connection.request("POST", "/v1/jobs", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        if response.status != 201:
            raise RuntimeError(f"submission answered {response.status}")
    connection.close()
    return started, time.monotonic()


def start_rate(scale: Scale, concurrency: int = 8) -> Figure:
    """N short jobs submitted at once until all finished, vs N `docker run --rm` with the same concurrency."""
    daemon = bench_daemon("--max-running-jobs", str(concurrency)).start()
    try:
        ours, docker = [], []
        for _ in range(2 if scale.start_jobs >= 100 else 1):
            started = time.perf_counter()
            ids = [
                daemon.request("POST", "/v1/jobs", {"task": "detectnet_v2", "subtask": "exit", "args": ["0"]})["id"]
                for _ in range(scale.start_jobs)
            ]
            while daemon.request("GET", "/v1/jobs?status=queued&status=pulling&status=starting&status=running&limit=1")["jobs"]:
                time.sleep(0.02)
            ours.append(time.perf_counter() - started)
            failed = [i for i in ids if daemon.request("GET", f"/v1/jobs/{i}")["status"] != "succeeded"]
            if failed:
                raise RuntimeError(f"{len(failed)} jobs did not succeed")
            started = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(lambda _: timed(["docker", "run", "--rm", IMAGE, "detectnet_v2", "exit", "0"]), range(scale.start_jobs)))
            docker.append(time.perf_counter() - started)
        figure = Figure(
            "5",
            f"{scale.start_jobs} short jobs at once (concurrency {concurrency}): tao vs docker run --rm",
            "s",
            ours,
            "ratio <= 1.25",
            None,
            baseline=docker,
        )
        figure.met = figure.summary()["ratio"] <= 1.25
        return figure
    finally:
        daemon.discard()


def _producer(size: int) -> list[str]:
    return ["sh", "-c", f"yes '{LINE.rstrip()}' | head -c {size}"]


def _docker_logs_follow(size: int, attempts: int = 5) -> float | None:
    """MB/s of `docker logs -f` on a container writing `size` bytes; None when no try read it whole.

    Docker 20.10's json-file follower can stop early when the container exits while it reads
    (the engine's race, not ours): such a run is measured again, and only a full read counts.
    """
    for _ in range(attempts):
        started = time.perf_counter()
        container = subprocess.run(
            ["docker", "run", "-d", IMAGE, *_producer(size)], capture_output=True, text=True, check=True
        ).stdout.strip()
        received = 0
        with subprocess.Popen(["docker", "logs", "-f", container], stdout=subprocess.PIPE) as logs:
            assert logs.stdout is not None
            while chunk := os.read(logs.stdout.fileno(), 1 << 20):
                received += len(chunk)
        elapsed = time.perf_counter() - started
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
        if received == size:
            return size / elapsed / 1e6
    print(f"   docker logs -f gave {received} of {size} bytes, {attempts} times: no baseline from it", file=sys.stderr)
    return None


def _docker_baseline(size: int, runs: int = 2) -> list[float] | None:
    """`docker logs -f`'s MB/s over `runs` full reads; None when the engine never gave a whole log (the figure is then unjudged)."""
    measured = [rate for rate in (_docker_logs_follow(size) for _ in range(runs)) if rate is not None]
    return measured or None


def _websocket_follow(daemon: Daemon, job_id: str, expected: int, results: list[float], started: float) -> None:
    from websockets.sync.client import unix_connect

    received = 0
    with unix_connect(str(daemon.socket), f"ws://tao/v1/jobs/{job_id}/logs", max_size=None) as ws:
        for message in ws:
            if isinstance(message, bytes):
                received += len(message)
            elif json.loads(message)["type"] == "end":
                break
    if received != expected:
        raise RuntimeError(f"follower got {received} of {expected} bytes")
    results.append(expected / (time.perf_counter() - started) / 1e6)


def _followed_job(daemon: Daemon, size: int, followers: int) -> list[float]:
    results: list[float] = []
    started = time.perf_counter()
    job = daemon.request("POST", "/v1/jobs", {"task": "detectnet_v2", "subtask": "run", "args": _producer(size)})
    threads = [threading.Thread(target=_websocket_follow, args=(daemon, job["id"], size, results, started)) for _ in range(followers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(results) != followers:
        raise RuntimeError("a follower failed")
    return results


def log_throughput(scale: Scale) -> list[Figure]:
    daemon = bench_daemon().start()
    try:
        docker_single = _docker_baseline(scale.log_bytes)
        ours_single = [_followed_job(daemon, scale.log_bytes, 1)[0] for _ in range(2)]
        single = Figure(
            "6a",
            f"log throughput, 1 websocket follower, {scale.log_bytes >> 20} MiB",
            "MB/s",
            ours_single,
            ">= 0.8x docker logs -f",
            None,
            baseline=docker_single,
        )
        single.met = single.summary()["ratio"] >= 0.8 if docker_single else None
        docker_small = _docker_baseline(scale.follower_bytes)
        ours_many = _followed_job(daemon, scale.follower_bytes, scale.followers)
        many = Figure(
            "6b",
            f"log throughput, each of {scale.followers} followers, {scale.follower_bytes >> 20} MiB",
            "MB/s",
            ours_many,
            ">= 0.8x docker logs -f, each",
            None,
            baseline=docker_small,
        )
        many.met = min(ours_many) / statistics.median(docker_small) >= 0.8 if docker_small else None
        return [single, many]
    finally:
        daemon.discard()


def list_latency_and_memory(scale: Scale) -> list[Figure]:
    """GET /v1/jobs?limit=50 with a large table (figure 7), and the daemon's memory (figure 8)."""
    daemon = bench_daemon()
    daemon.start()
    idle = [rss_mb(daemon.process.pid)]  # type: ignore[union-attr]
    daemon.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    daemon.process.wait()  # type: ignore[union-attr]
    fill_table(daemon.data_dir / "tao.db", scale.table_jobs)
    daemon.start()
    try:
        pid = daemon.process.pid  # type: ignore[union-attr]
        first, deep = _list_timings(daemon, scale)
        figures = [
            Figure(
                "7a",
                f"GET /v1/jobs?limit=50, first page, {scale.table_jobs} jobs",
                "s",
                first,
                "p99 < 20 ms",
                percentile(first, 0.99) < 0.020,
                extra={"p99": round(percentile(first, 0.99), 6)},
            ),
            Figure(
                "7b",
                f"GET /v1/jobs?limit=50, deep page, {scale.table_jobs} jobs",
                "s",
                deep,
                "p99 < 20 ms",
                percentile(deep, 0.99) < 0.020,
                extra={"p99": round(percentile(deep, 0.99), 6)},
            ),
        ]
        loaded = rss_mb(pid)
        after_rounds = []
        for _ in range(3):
            _followed_job(daemon, 1024 * 1024, scale.followers)
            time.sleep(0.5)
            after_rounds.append(rss_mb(pid))
        growth = after_rounds[-1] - after_rounds[0]
        figures.append(Figure("8a", "daemon RSS idle", "MB", idle, "< 100 MB", idle[0] < 100))
        figures.append(
            Figure(
                "8b",
                f"daemon RSS after {scale.table_jobs} jobs listed and {scale.followers} followers, 3 rounds",
                "MB",
                after_rounds,
                "no growth after followers leave",
                growth < 5,
                extra={"after_listing": round(loaded, 1), "growth_round1_to_3": round(growth, 1)},
            )
        )
        return figures
    finally:
        daemon.discard()


def fill_table(db_path, count: int, statuses: tuple[str, ...] = ("succeeded",)) -> None:  # type: ignore[no-untyped-def]
    """`count` ended jobs straight into a stopped daemon's table, their statuses taken in turn from `statuses`."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    args = '["-e", "/workspace/specs/train.txt", "-r", "/workspace/results"]'
    command = '["detectnet_v2", "train", "-e", "/workspace/specs/train.txt", "-r", "/workspace/results"]'
    before, after = ("detectnet_v2", "train", args, command, IMAGE), ("[]", "{}", '{"shm_size": 67108864}', "[]", 0, now, now, now)
    with sqlite3.connect(db_path) as connection:
        connection.executemany(
            "INSERT INTO job (id, task, subtask, args, command, image, status, exit_code, mounts, envs, docker_options, gpus, cancel_requested, created_at, started_at, finished_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (f"bench{i:07d}", *before, status, 0 if status == "succeeded" else 1, *after)
                for i, status in ((i, statuses[i % len(statuses)]) for i in range(count))
            ),
        )


def _list_timings(daemon: Daemon, scale: Scale) -> tuple[list[float], list[float]]:

    connection = unix_connection(daemon.socket)

    def get(path: str) -> float:
        started = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200 or len(json.loads(body)["jobs"]) != 50:
            raise RuntimeError(f"GET {path}: {response.status}")
        return elapsed

    deep_cursor = str(max(100, scale.table_jobs // 20))
    first = [get("/v1/jobs?limit=50") for _ in range(scale.list_requests)]
    deep = [get(f"/v1/jobs?limit=50&cursor={deep_cursor}") for _ in range(scale.list_requests)]
    connection.close()
    return first, deep


def cold_pull(scale: Scale) -> Figure:
    """Pull and start a task on a cold cache vs `docker pull` + `docker run --rm`, from a local registry."""
    import tempfile
    from pathlib import Path

    from tao_server.testing.registry import PASSWORD, USERNAME, Registry, build_variant, remove_local

    root = Path(tempfile.mkdtemp(prefix="tao-bench-registry-"))
    registry = Registry(root, _free_port()).start()
    try:
        variant = build_variant(IMAGE, "tao-bench/pullable:1", root, size=scale.pull_layer_bytes)
        reference, _ = registry.push(variant, "tao/bench:1")
        remove_local(variant)
        manifest = root / "manifest.json"
        manifest.write_text(
            json.dumps(
                {"format_version": 2.0, "dockers": {"tao/bench": {"1": {"docker_registry": registry.host, "tasks": ["detectnet_v2"]}}}}
            )
        )
        daemon = bench_daemon(manifest=manifest).start()
        try:
            subprocess.run(
                [tool("tao"), "login", registry.host, "-u", USERNAME, "--password-stdin"],
                input=PASSWORD.encode(),
                env=daemon.env(),
                check=True,
                capture_output=True,
            )
            subprocess.run(
                ["docker", "login", registry.host, "-u", USERNAME, "--password-stdin"],
                input=PASSWORD.encode(),
                check=True,
                capture_output=True,
            )

            def ours() -> float:
                remove_local(reference)
                return timed([tool("tao"), "detectnet_v2", "exit", "0"], daemon.env())

            def docker() -> float:
                remove_local(reference)
                return timed(["docker", "pull", "-q", reference]) + timed(["docker", "run", "--rm", reference, "detectnet_v2", "exit", "0"])

            mine, theirs = alternate(scale.pulls, ours, docker)
        finally:
            subprocess.run(["docker", "logout", registry.host], capture_output=True)
            daemon.discard()
        figure = Figure(
            "9",
            f"cold pull ({scale.pull_layer_bytes >> 20} MiB layer) and start: tao vs docker pull + docker run",
            "s",
            mine,
            "ratio (issue 4 note)",
            None,
            baseline=theirs,
        )
        figure.met = None
        return figure
    finally:
        registry.stop()
        remove_local(reference if "reference" in locals() else "")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

"""A daemon busy streaming still answers newcomers (figure 26).

One job writes its output at full speed to 50 websocket followers (figure 6b's load). Once every
follower reads, a prober, in a process of its own so that the followers' threads never hold its
interpreter lock, opens a new websocket on the job's log (26a: connect to the handshake's answer)
and asks `GET /healthz` on a new connection (26b: connect to the whole answer), in turn, until
the followers have read everything. The followers' own handshakes, all made at once at the start,
are reported beside them.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from dataclasses import dataclass
from typing import Any

from harness import Daemon, Figure, bench_daemon, percentile, unix_connection

GROUPS = ("26",)  # what bench/run.py asks of this module
LINE = "0123456789 the quick brown fox jumps over the lazy dog 0123456789"
TARGET = 0.250  # seconds: p99 of each probe
PAUSE = 0.02  # seconds between probes: a steady trickle of newcomers, not a flood of its own


@dataclass
class StreamScale:
    followers: int
    follower_bytes: int

    @classmethod
    def full(cls) -> StreamScale:
        return cls(followers=50, follower_bytes=64 * 1024**2)

    @classmethod
    def quick(cls) -> StreamScale:
        return cls(followers=5, follower_bytes=4 * 1024**2)


def run_group(group: str, scale: StreamScale) -> list[Figure]:
    daemon = bench_daemon().start()
    try:
        return newcomers_while_streaming(daemon, scale)
    finally:
        daemon.discard()


def newcomers_while_streaming(daemon: Daemon, scale: StreamScale) -> list[Figure]:
    size = scale.follower_bytes
    job = daemon.request(
        "POST", "/v1/jobs", {"task": "detectnet_v2", "subtask": "run", "args": ["sh", "-c", f"yes '{LINE}' | head -c {size}"]}
    )
    handshakes: list[float] = []
    opened = threading.Semaphore(0)  # one release per follower, once its handshake is done (or it failed)
    threads = [threading.Thread(target=_follow, args=(daemon, job["id"], size, handshakes, opened)) for _ in range(scale.followers)]
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    stop = context.Event()
    prober = context.Process(target=_probe, args=(str(daemon.socket), job["id"], stop, results))
    for thread in threads:
        thread.start()
    for _ in threads:  # the probes begin once every follower reads: they measure the daemon busy, not idle
        opened.acquire()
    prober.start()
    for thread in threads:
        thread.join()
    stop.set()
    handshake_samples, health_samples = results.get(timeout=60)
    prober.join(timeout=60)
    if len(handshakes) != scale.followers:
        raise RuntimeError(f"{scale.followers - len(handshakes)} of {scale.followers} followers failed")
    followers = {"followers": scale.followers, "follower_handshake_max": round(max(handshakes), 6)}
    return [
        _latency("26a", f"new websocket handshake while {scale.followers} followers read", handshake_samples, followers),
        _latency("26b", f"GET /healthz on a new connection while {scale.followers} followers read", health_samples, followers),
    ]


def _latency(number: str, name: str, samples: list[float], extra: dict[str, Any]) -> Figure:
    if not samples:
        raise RuntimeError(f"figure {number}: no probe finished while the followers read")
    p99 = percentile(samples, 0.99)
    return Figure(number, name, "s", samples, "p99 < 250 ms", p99 < TARGET, extra={"p99": round(p99, 6), **extra})


def _follow(daemon: Daemon, job_id: str, expected: int, handshakes: list[float], opened: threading.Semaphore) -> None:
    from websockets.sync.client import unix_connect

    started = time.perf_counter()
    received = 0
    try:
        ws = unix_connect(str(daemon.socket), f"ws://tao/v1/jobs/{job_id}/logs", max_size=None, open_timeout=60)
    finally:
        opened.release()
    with ws:
        handshake = time.perf_counter() - started
        for message in ws:
            if isinstance(message, bytes):
                received += len(message)
            elif json.loads(message)["type"] == "end":
                break
    if received == expected:
        handshakes.append(handshake)


def _probe(socket_path: str, job_id: str, stop: Any, results: Any) -> None:
    """Handshakes and /healthz in turn until `stop`; both lists of seconds go to `results`."""
    handshakes: list[float] = []
    health: list[float] = []
    while not stop.is_set():
        handshakes.append(_handshake(socket_path, job_id))
        health.append(_health(socket_path))
        time.sleep(PAUSE)
    results.put((handshakes, health))


def _handshake(socket_path: str, job_id: str) -> float:
    """Connect to the log's websocket at an offset past its end (it sends nothing), as far as the handshake's answer."""
    from websockets.sync.client import unix_connect

    started = time.perf_counter()
    with unix_connect(socket_path, f"ws://tao/v1/jobs/{job_id}/logs?offset={2**62}", open_timeout=60):
        return time.perf_counter() - started


def _health(socket_path: str) -> float:
    started = time.perf_counter()
    connection = unix_connection(socket_path, timeout=60)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"/healthz answered {response.status}")
        return time.perf_counter() - started
    finally:
        connection.close()

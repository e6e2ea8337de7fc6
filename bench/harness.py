"""What every benchmark needs: a real daemon (the tests' harness, tao_server.testing), timing of whole
processes, and honest statistics."""

from __future__ import annotations

import http.client
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tao_server.testing.daemon import Daemon, executable

__all__ = ["Daemon", "Figure", "alternate", "bench_daemon", "describe", "percentile", "rss_mb", "timed", "tool", "unix_connection"]

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "tao-sample/toolkit:1"


def tool(name: str) -> str:
    """The installed command: beside this interpreter (the project's venv), else on PATH."""
    try:
        return executable(name)
    except RuntimeError as exc:
        sys.exit(f"bench: {exc}")


def build_image() -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_sample_image.py"), IMAGE], check=True, stdout=subprocess.DEVNULL)


@dataclass
class Figure:
    """One measured figure: samples in seconds (or another unit), with a target to compare against."""

    number: str  # "2", "6a": as the README's table numbers them
    name: str
    unit: str
    samples: list[float]
    target: str
    met: bool | None
    baseline: list[float] | None = None
    baseline_name: str = "docker"  # what the baseline ran: plain Docker for most figures
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        body: dict[str, Any] = {"number": self.number, "name": self.name, "unit": self.unit, "target": self.target, "met": self.met}
        body.update(describe(self.samples))
        if self.baseline is not None:
            body["baseline"] = {"of": self.baseline_name, **describe(self.baseline)}
            body["ratio"] = round(statistics.median(self.samples) / statistics.median(self.baseline), 3)
        body.update(self.extra)
        return body


def describe(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    return {
        "median": round(statistics.median(ordered), 6),
        "min": round(ordered[0], 6),
        "max": round(ordered[-1], 6),
        "p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 6),
        "runs": len(ordered),
    }


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def timed(command: list[str], env: dict[str, str] | None = None, expect: int = 0) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if result.returncode != expect:
        raise RuntimeError(f"{command} exited {result.returncode}: {result.stderr.decode(errors='replace')[-500:]}")
    return elapsed


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def unix_connection(socket_path: str | Path, timeout: float | None = None) -> http.client.HTTPConnection:
    """A kept-alive HTTP/1.1 connection to the daemon's Unix socket, with the standard library's client."""
    connection = http.client.HTTPConnection("tao", timeout=timeout)
    connection.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.sock.settimeout(timeout)
    connection.sock.connect(str(socket_path))
    return connection


def bench_daemon(*args: str, manifest: Path | None = None, env: dict[str, str] | None = None) -> Daemon:
    """A daemon in a temp dir of its own with the sample manifest; `discard()` removes all of it."""
    root = Path(tempfile.mkdtemp(prefix="tao-bench-"))
    default_args = ("--log-level", "warning", "--stop-timeout", "10")
    return Daemon(root, manifest or ROOT / "examples" / "sample-toolkit" / "manifest.json", *default_args, *args, env=env)


def alternate(pairs: int, first: Callable[[], float], second: Callable[[], float]) -> tuple[list[float], list[float]]:
    """A/B in alternation, so drift on a noisy machine hits both sides alike."""
    a, b = [], []
    for _ in range(pairs):
        a.append(first())
        b.append(second())
    return a, b

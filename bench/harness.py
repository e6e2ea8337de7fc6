"""What every benchmark needs: a real daemon, timing of whole processes, and honest statistics."""

from __future__ import annotations

import json
import os
import shutil
import signal
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

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "tao-sample/toolkit:1"


def tool(name: str) -> str:
    """The installed command: beside this interpreter (the project's venv), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        sys.exit(f"bench: {name} is not installed; run scripts/prepare first")
    return found


def build_image() -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build-sample-image"), IMAGE], check=True, stdout=subprocess.DEVNULL)


@dataclass
class Figure:
    """One measured figure: samples in seconds (or another unit), with a target to compare against."""

    number: int
    name: str
    unit: str
    samples: list[float]
    target: str
    met: bool | None
    baseline: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        body: dict[str, Any] = {"number": self.number, "name": self.name, "unit": self.unit, "target": self.target, "met": self.met}
        body.update(describe(self.samples))
        if self.baseline is not None:
            body["baseline"] = describe(self.baseline)
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


class Daemon:
    """A `tao-server` on a Unix socket in a temp dir, with the sample manifest."""

    def __init__(self, *args: str, data_dir: Path | None = None, manifest: Path | None = None) -> None:
        self.manifest = manifest or ROOT / "examples" / "sample-toolkit" / "manifest.json"
        self.root = Path(tempfile.mkdtemp(prefix="tao-bench-"))
        self.socket = self.root / "tao.sock"
        self.data_dir = data_dir or self.root / "data"
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key != "LAUNCHER_MOUNTS"}
        env.update(TAO_HOST=self.address, TAO_NO_AUTOSTART="1", HOME=str(self.root))
        return env

    def start(self) -> Daemon:
        command = [
            tool("tao-server"), "--data-dir", str(self.data_dir), "--socket", str(self.socket),
            "--manifest", str(self.manifest), "--gpus", "none",
            "--log-level", "warning", "--stop-timeout", "10", *self.args,
        ]
        self.log = open(self.root / "server.log", "ab")
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tao-server exited: {(self.root / 'server.log').read_text()[-2000:]}")
            if self.request("GET", "/healthz", quiet=True) is not None:
                return self
            time.sleep(0.05)
        raise RuntimeError("tao-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None
        subprocess.run(["docker", "rm", "-f", *self.containers()], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def containers(self) -> list[str]:
        daemon_id = (self.data_dir / "daemon-id").read_text().strip() if (self.data_dir / "daemon-id").exists() else "none"
        listed = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=org.tao-launcher.daemon={daemon_id}"], capture_output=True, text=True)
        return listed.stdout.split()

    def request(self, method: str, path: str, body: Any = None, quiet: bool = False) -> Any:
        """One HTTP request on a fresh Unix-socket connection; JSON in and out."""
        import http.client

        connection = http.client.HTTPConnection("tao")
        connection.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connection.sock.connect(str(self.socket))
            payload = None if body is None else json.dumps(body).encode()
            connection.request(method, path, body=payload, headers={"Content-Type": "application/json"} if payload else {})
            response = connection.getresponse()
            data = response.read()
        except OSError:
            if quiet:
                return None
            raise
        finally:
            connection.close()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data) if data else None

    def wait_for(self, job_id: str, statuses: tuple[str, ...], timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.request("GET", f"/v1/jobs/{job_id}")
            if job["status"] in statuses:
                return job
            time.sleep(0.02)
        raise RuntimeError(f"job {job_id} did not reach {statuses}")


def alternate(pairs: int, first: Callable[[], float], second: Callable[[], float]) -> tuple[list[float], list[float]]:
    """A/B in alternation, so drift on a noisy machine hits both sides alike."""
    a, b = [], []
    for _ in range(pairs):
        a.append(first())
        b.append(second())
    return a, b

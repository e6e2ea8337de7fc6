"""Check the daemon's GPU figures against nvidia-smi on a machine with an NVIDIA GPU (not part of bench/run.py).

    python bench/gpu_check.py [--device 0] [--busy 40] [--idle 30]                  # no Docker needed
    python bench/gpu_check.py --engine docker --image nvcr.io/nvidia/pytorch:24.10-py3 [--device 0]

A CUDA load (a loop of 4096x4096 matrix products holding --mib of GPU memory, with PyTorch, else
CuPy) runs on one device for --busy seconds, then holds its memory and does nothing for --idle
seconds, in a job that holds that device:

- `--engine none` (the default): the daemon's app in this process (create_app, as the in-process
  tests build it) on the in-memory backend, with the real NVML; its job holds the device while
  this script runs the load as a child process pinned to the device by UUID
  (CUDA_VISIBLE_DEVICES=GPU-...). Needs: the NVIDIA driver and nvidia-smi, the project installed
  with nvidia-ml-py (`pip install '.[server,gpu]' httpx`), and PyTorch or CuPy for the load.
- `--engine docker`: a real `tao-server` on the Docker engine (`--gpu-mode request`), whose job
  runs the load in --image through `tao <task> run python3 -c ...`. Needs: the NVIDIA Container
  Toolkit, an image with python3 and PyTorch or CuPy, pulled beforehand, and `tao-server` with
  nvidia-ml-py installed beside this Python.

What it checks, each reported with its numbers:
1. mapping: GET /metrics names the daemon's GPU --device with the UUID nvidia-smi gives index
   --device (the daemon's indices are NVML's, as nvidia-smi's are);
2. utilisation: the mean of the job's `gpu_utilization` series over the busy window is within
   --util-tolerance points of nvidia-smi's utilization.gpu sampled each second meanwhile, and
   over 50% (the load is seen on the device the job holds, not another);
3. memory: the median of the job's `gpu_memory_used` (MiB) over that window is within
   max(--mem-tolerance MiB, 5%) of nvidia-smi's memory.used;
4. the exporter: tao_gpu_utilization_ratio and tao_gpu_memory_used_bytes of that device, scraped
   in the busy window, within the same tolerances of nvidia-smi's reading at that moment;
5. idle: once the load has stopped (the job still holding the device), its condition reads
   "GPU N idle for ..." within TAO_GPU_IDLE_AFTER (10 s here) plus three samples, and a
   `gpu_idle` event says so.
Exit 0 when every check holds, 1 otherwise; the report goes to stdout and --output (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_INTERVAL, IDLE_AFTER = 1.0, 10.0
WARM_UP = 3.0  # seconds from the load's first product to its steady state

# The load: busy seconds of matrix products, then idle seconds holding its memory. argv: busy idle mib.
LOAD = r"""
import sys, time
busy, idle, mib = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
try:
    import torch
    held = torch.empty(mib * 262144, dtype=torch.float32, device="cuda")
    a, b = torch.randn(4096, 4096, device="cuda"), torch.randn(4096, 4096, device="cuda")
    step, sync = (lambda: a @ b), torch.cuda.synchronize
except ImportError:
    import cupy
    held = cupy.empty(mib * 262144, dtype=cupy.float32)
    a, b = cupy.random.rand(4096, 4096, dtype=cupy.float32), cupy.random.rand(4096, 4096, dtype=cupy.float32)
    step, sync = (lambda: a @ b), cupy.cuda.runtime.deviceSynchronize
print("load: busy", flush=True)
end = time.time() + busy
while time.time() < end:
    for _ in range(10):
        step()
    sync()
print("load: idle", flush=True)
time.sleep(idle)
print("load: done", flush=True)
"""


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


class Daemon(Protocol):
    """What the checks need of either engine: the API as an admin, and a job holding the device under load."""

    def get(self, path: str) -> Any: ...

    def metrics_text(self) -> str: ...

    def start_load(self, device: str, uuid: str, busy: float, idle: float, mib: int) -> str: ...


class Smi:
    """nvidia-smi's view of one device, by its index."""

    def __init__(self, device: str) -> None:
        self.device = device

    def query(self, fields: str) -> list[str]:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits", "-i", self.device],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout  # fmt: skip
        return [part.strip() for part in out.strip().split(",")]

    def identity(self) -> dict[str, str]:
        uuid, bus_id, name = self.query("uuid,pci.bus_id,name")
        return {"uuid": uuid, "bus_id": bus_id, "name": name}

    def reading(self) -> tuple[float, float]:
        """(utilization.gpu %, memory.used MiB) now."""
        utilization, memory = self.query("utilization.gpu,memory.used")
        return float(utilization), float(memory)


def main() -> int:
    args = _parser().parse_args()
    smi = Smi(args.device)
    identity = smi.identity()
    print(f"GPU {args.device} per nvidia-smi: {identity['name']}, {identity['uuid']} at PCI {identity['bus_id']}", file=sys.stderr)
    opened = _in_process(args) if args.engine == "none" else _docker(args)
    with opened as daemon:
        checks = run_checks(daemon, smi, identity, args)
    for check in checks:
        print(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
    report = {
        "date": datetime.now().isoformat(timespec="seconds"),
        "engine": args.engine,
        "gpu": identity,
        "checks": [asdict(c) for c in checks],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(check.ok for check in checks) else 1


def run_checks(daemon: Daemon, smi: Smi, identity: dict[str, str], args: argparse.Namespace) -> list[Check]:
    device = args.device
    job = daemon.start_load(device, identity["uuid"], args.busy, args.idle, args.mib)
    started = time.time()
    _sleep_until(started + WARM_UP)
    window_start = time.time()
    readings: list[tuple[float, float]] = []
    scraped: tuple[str, tuple[float, float]] | None = None
    while time.time() < started + args.busy - 2:
        readings.append(smi.reading())
        if scraped is None and len(readings) >= 5:
            scraped = (daemon.metrics_text(), smi.reading())
        time.sleep(1.0)
    window_end = time.time()
    checks = [_mapping(daemon.metrics_text(), device, identity["uuid"])]
    series = daemon.get(f"/v1/jobs/{job}/metrics")["series"]
    checks += _series_checks(series, readings, window_start, window_end, args)
    if scraped is not None:
        checks += _exporter_checks(scraped[0], device, scraped[1], args)
    checks.append(_idle_check(daemon, job, device, started + args.busy))
    return checks


def _mapping(exposition: str, device: str, uuid: str) -> Check:
    labels = _gauge(exposition, "tao_gpu_utilization_ratio")
    named = [found for found in labels if found.get("gpu") == device]
    ok = len(named) == 1 and named[0].get("uuid") == uuid
    return Check(
        "mapping", ok, f"the daemon's GPU {device} is {named[0].get('uuid') if named else 'absent'}; nvidia-smi's index {device} is {uuid}"
    )


def _series_checks(
    series: dict[str, Any], readings: list[tuple[float, float]], start: float, end: float, args: argparse.Namespace
) -> list[Check]:
    def within(name: str) -> list[float]:
        return [
            p["value"] for p in series.get(name, []) if start <= datetime.fromisoformat(p["time"].replace("Z", "+00:00")).timestamp() <= end
        ]

    utilization, memory = within("gpu_utilization"), within("gpu_memory_used")
    if not utilization or not memory or not readings:
        return [
            Check(
                "series",
                False,
                f"{len(utilization)} utilisation and {len(memory)} memory samples in the busy window; {len(readings)} nvidia-smi readings",
            )
        ]
    daemon_util, smi_util = statistics.mean(utilization), statistics.mean(r[0] for r in readings)
    daemon_mem, smi_mem = statistics.median(memory), statistics.median(r[1] for r in readings)
    util_ok = abs(daemon_util - smi_util) <= args.util_tolerance and daemon_util > 50
    mem_ok = abs(daemon_mem - smi_mem) <= max(args.mem_tolerance, 0.05 * smi_mem)
    return [
        Check("utilisation", util_ok, f"the job's gpu_utilization {daemon_util:.1f}% (mean of {len(utilization)}) vs nvidia-smi {smi_util:.1f}% (mean of {len(readings)})"),
        Check("memory", mem_ok, f"the job's gpu_memory_used {daemon_mem:.0f} MiB (median) vs nvidia-smi memory.used {smi_mem:.0f} MiB"),
    ]  # fmt: skip


def _exporter_checks(exposition: str, device: str, reading: tuple[float, float], args: argparse.Namespace) -> list[Check]:
    utilization = _value(exposition, "tao_gpu_utilization_ratio", device)
    memory = _value(exposition, "tao_gpu_memory_used_bytes", device)
    if utilization is None or memory is None:
        return [Check("exporter", False, f"GET /metrics has no utilisation or memory for GPU {device}")]
    util_ok = abs(utilization * 100 - reading[0]) <= args.util_tolerance
    mem_ok = abs(memory / 2**20 - reading[1]) <= max(args.mem_tolerance, 0.05 * reading[1])
    detail = f"tao_gpu_utilization_ratio {utilization:.2f}, tao_gpu_memory_used_bytes {memory / 2**20:.0f} MiB vs nvidia-smi {reading[0]:.0f}%, {reading[1]:.0f} MiB"
    return [Check("exporter", util_ok and mem_ok, detail)]


def _idle_check(daemon: Daemon, job: str, device: str, busy_until: float) -> Check:
    deadline = busy_until + IDLE_AFTER + 3 * SAMPLE_INTERVAL + 10
    condition = None
    while time.time() < deadline and not (condition or "").startswith(f"GPU {device} idle for "):
        condition = daemon.get(f"/v1/jobs/{job}").get("condition")
        time.sleep(0.5)
    seen = time.time() - busy_until
    events = [e["data"]["message"] for e in daemon.get(f"/v1/jobs/{job}/events")["events"] if e["type"] == "gpu_idle"]
    ok = (condition or "").startswith(f"GPU {device} idle for ") and bool(events)
    return Check(
        "idle", ok, f"condition {condition!r} {seen:.1f} s after the load stopped (idle after {IDLE_AFTER:.0f} s); events {events}"
    )


def _gauge(exposition: str, name: str) -> list[dict[str, str]]:
    from prometheus_client.parser import text_string_to_metric_families

    return [dict(s.labels, value=str(s.value)) for f in text_string_to_metric_families(exposition) for s in f.samples if s.name == name]


def _value(exposition: str, name: str, device: str) -> float | None:
    found = [float(labels["value"]) for labels in _gauge(exposition, name) if labels.get("gpu") == device]
    return found[0] if found else None


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


# -- the two engines -------------------------------------------------------------------------------


class _InProcess:
    """The app on the in-memory backend, real NVML; the load is this script's child, pinned by UUID."""

    def __init__(self, client: Any, headers: dict[str, str], engine: Any) -> None:
        self.client, self.headers, self.engine = client, headers, engine
        self.load: subprocess.Popen[str] | None = None

    def get(self, path: str) -> Any:
        return self.client.get(path, headers=self.headers).json()

    def metrics_text(self) -> str:
        return str(self.client.get("/metrics", headers=self.headers).text)

    def start_load(self, device: str, uuid: str, busy: float, idle: float, mib: int) -> str:
        answer = self.client.post(
            "/v1/jobs",
            headers=self.headers,
            json={"task": "detectnet_v2", "subtask": "hold", "args": ["gpu-check"], "gpu_indices": [device]},
        )
        job: str = answer.json()["id"]
        _wait(lambda: self.get(f"/v1/jobs/{job}")["status"] == "running", "the job holds the GPU")
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": uuid}  # the device by its UUID: CUDA's own numbering plays no part
        load = subprocess.Popen([sys.executable, "-c", LOAD, str(busy), str(idle), str(mib)], env=env, stdout=subprocess.PIPE, text=True)
        self.load = load
        assert load.stdout is not None
        for line in load.stdout:  # its imports and CUDA's start take seconds: the busy time counts from its first product
            if line.startswith("load: busy"):
                return job
        raise SystemExit(f"gpu_check: the load ended before it began ({load.wait()}); is PyTorch or CuPy installed?")


@contextmanager
def _in_process(args: argparse.Namespace) -> Iterator[_InProcess]:
    from fastapi.testclient import TestClient

    from tao_server.app import create_app
    from tao_server.settings import Settings
    from tao_server.testing.fake_backend import FakeBackend, FakeEngine

    root = Path(tempfile.mkdtemp(prefix="tao-gpu-check-"))
    manifest = root / "manifest.json"
    manifest.write_text(json.dumps(_manifest("tao-gpu-check/none:1")))
    settings = Settings(
        data_dir=root / "data", socket=root / "unused.sock", manifest=manifest, gpus="auto", gpu_mode="env",
        gpu_sample_interval=SAMPLE_INTERVAL, gpu_idle_after=IDLE_AFTER,
    )  # fmt: skip
    engine = FakeEngine(images=["tao-gpu-check/none:1"])
    with TestClient(create_app(settings, backend=FakeBackend(engine))) as client:
        _, token = client.app.state.services.tokens.create("root", 0, 0, admin=True)  # type: ignore[attr-defined]
        daemon = _InProcess(client, {"Authorization": f"Bearer {token}"}, engine)
        try:
            yield daemon
        finally:
            if daemon.load is not None:
                daemon.load.wait(timeout=args.busy + args.idle + 120)
            engine.release("gpu-check")
            engine.kill_all()


class _Docker:
    """A real tao-server on the Docker engine; the load runs in the job's container."""

    def __init__(self, daemon: Any, image: str) -> None:
        self.daemon, self.image = daemon, image

    def get(self, path: str) -> Any:
        return self.daemon.request("GET", path)

    def metrics_text(self) -> str:
        with self.daemon.http() as client:
            return str(client.get("/metrics").text)

    def start_load(self, device: str, uuid: str, busy: float, idle: float, mib: int) -> str:
        body = {
            "task": "detectnet_v2",
            "subtask": "run",
            "args": ["python3", "-c", LOAD, str(busy), str(idle), str(mib)],
            "gpu_indices": [device],
            "pull": "never",
        }
        job: str = self.daemon.request("POST", "/v1/jobs", body)["id"]
        _wait(lambda: self.daemon.job(job)["status"] in ("running", "failed", "error"), "the job starts", timeout=300)
        self.daemon.wait_for_output(job, b"load: busy", timeout=300)
        return job


@contextmanager
def _docker(args: argparse.Namespace) -> Iterator[_Docker]:
    from tao_server.testing.daemon import Daemon as RealDaemon

    root = Path(tempfile.mkdtemp(prefix="tao-gpu-check-"))
    manifest = root / "manifest.json"
    manifest.write_text(json.dumps(_manifest(args.image)))
    env = {"TAO_GPU_SAMPLE_INTERVAL": str(SAMPLE_INTERVAL), "TAO_GPU_IDLE_AFTER": str(IDLE_AFTER)}
    daemon = RealDaemon(root, manifest, "--gpus", "auto", "--gpu-mode", "request", "--log-level", "info", env=env).start()
    try:
        yield _Docker(daemon, args.image)
        print(f"the daemon's log: {root / 'server.log'}", file=sys.stderr)
    finally:
        daemon.stop()
        daemon.remove_containers()


def _manifest(image: str) -> dict[str, Any]:
    repository, tag = image.rsplit(":", 1)
    return {
        "format_version": 2.0,
        "toolkit_version": "gpu-check",
        "dockers": {repository: {tag: {"docker_registry": "", "tasks": ["detectnet_v2"]}}},
    }


def _wait(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"gpu_check: never: {what}")
        time.sleep(0.1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="0", help="the GPU's index, as nvidia-smi and the daemon number it (default 0)")
    parser.add_argument(
        "--engine", choices=["none", "docker"], default="none", help="none: the app in this process (default); docker: a real daemon"
    )
    parser.add_argument("--image", help="--engine docker: an image with python3 and PyTorch or CuPy, already pulled")
    parser.add_argument("--busy", type=float, default=40.0, help="seconds of load (default 40)")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds the job then holds the idle device (default 30)")
    parser.add_argument("--mib", type=int, default=4096, help="GPU memory the load holds, MiB (default 4096)")
    parser.add_argument("--util-tolerance", type=float, default=15.0, help="percentage points (default 15)")
    parser.add_argument("--mem-tolerance", type=float, default=256.0, help="MiB, or 5%% when more (default 256)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "gpu_check.json")
    return parser


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if "--engine" in arguments and "docker" in arguments and "--image" not in arguments:
        sys.exit("gpu_check: --engine docker needs --image IMAGE (with python3 and PyTorch or CuPy)")
    sys.exit(main())

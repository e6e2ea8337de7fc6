"""A real Prometheus (Debian's `prometheus`) scrapes a real daemon's GET /metrics, and its HTTP API gives the values back.

Prometheus runs with a config of its own in a temp dir (never the system's service), scraping the
daemon's loopback TCP listener every second with a scrape token from a bearer token file, and a
second time with a user's token, which the daemon refuses. The test waits on Prometheus's targets
API for a scrape that began after the state it checks was in place, then queries /api/v1/query.
The daemon's two placeholder GPUs are read through NVML's stand-in (tests/fixtures/nvml_shim), the
one thing not real here: this host has no NVIDIA GPU.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tao_server.testing.daemon import Daemon
from tests.integration.conftest import Gates, free_port, until

pytestmark = pytest.mark.integration


class Prometheus:
    """A `prometheus` process on 127.0.0.1 with its own config and storage under `root`."""

    def __init__(self, root: Path, scrape_configs: list[dict[str, Any]]) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is not installed: scripts/prepare installs it (these tests never skip)")
        self.root = root
        self.url = f"http://127.0.0.1:{free_port()}"
        config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"}, "scrape_configs": scrape_configs}
        (root / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        command = [
            binary, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address={self.url.removeprefix('http://')}", "--log.level=warn",
        ]  # fmt: skip
        with open(root / "prometheus.log", "ab") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def ready(self) -> bool:
        assert self.process.poll() is None, f"prometheus exited:\n{(self.root / 'prometheus.log').read_text()[-3000:]}"
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=10).status_code == 200
        except httpx.TransportError:
            return False

    def target(self, job: str) -> dict[str, Any] | None:
        targets = httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        return next((target for target in targets if target["labels"]["job"] == job), None)

    def scraped_since(self, job: str, since: float) -> dict[str, Any]:
        """The job's target once a scrape that began after `since` is recorded (its samples are in the database by then)."""
        found: dict[str, Any] = {}

        def done() -> bool:
            target = self.target(job)
            if target is None or target["health"] == "unknown":
                return False
            found.update(target)
            return datetime.fromisoformat(target["lastScrape"].replace("Z", "+00:00")).timestamp() > since

        until(done, f"prometheus scrapes {job} after {since}", timeout=60)
        return found

    def query(self, expression: str) -> dict[str, float]:
        """An instant query's result: each series' labels (as `k=v,...`, the scrape's job and instance left out) and value."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expression}, timeout=10).json()
        assert answer["status"] == "success", answer
        return {_labels(result["metric"]): float(result["value"][1]) for result in answer["data"]["result"]}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _labels(metric: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(metric.items()) if key not in ("__name__", "job", "instance"))


NVML_SHIM = Path(__file__).resolve().parents[1] / "fixtures" / "nvml_shim"
GPUS = [
    {"uuid": "GPU-5c0b6f0e-0000-4000-8000-000000000000", "bus_id": "00000000:1B:00.0", "utilization": 73, "used_mib": 5000},
    {"uuid": "GPU-9d4e1a7c-1111-4111-8111-111111111111", "bus_id": "00000000:3B:00.0", "utilization": 0, "used_mib": 0},
]


@pytest.fixture
def observed(new_daemon, tmp_path: Path) -> Iterator[tuple[Daemon, Prometheus, Gates, Path]]:  # type: ignore[no-untyped-def]
    """A daemon on loopback TCP with two placeholder GPUs that NVML's stand-in describes (tests/fixtures/nvml_shim),
    and a Prometheus scraping it as `tao` (scrape token) and as `tao-as-user` (a user's token)."""
    port = free_port()
    state = tmp_path / "nvml.json"
    state.write_text(json.dumps({"gpus": GPUS}))
    env = {"PYTHONPATH": str(NVML_SHIM), "TAO_TEST_NVML_STATE": str(state), "TAO_GPU_SAMPLE_INTERVAL": "0.5"}
    daemon = new_daemon("--host", "127.0.0.1", "--port", str(port), "--gpus", "0,1", "--gpu-mode", "env", env=env).start()
    root = tmp_path / "prometheus"
    root.mkdir()
    tokens = {
        "tao": daemon.token("--scrape", "--user", "prometheus"),
        "tao-as-user": daemon.token("--user", "reader", "--uid", "4243", "--gid", "4243"),
    }
    configs = []
    for job, token in tokens.items():
        (root / f"{job}.token").write_text(token + "\n")  # Prometheus trims the file's trailing newline
        (root / f"{job}.token").chmod(0o600)
        target = {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        configs.append({**target, "authorization": {"type": "Bearer", "credentials_file": str(root / f"{job}.token")}})
    gates = Gates(tmp_path / "gates")
    workspace = tmp_path / "workspace"
    (workspace / "results").mkdir(parents=True)
    prometheus = Prometheus(root, configs)
    try:
        until(prometheus.ready, "prometheus is ready", timeout=60)
        yield daemon, prometheus, gates, workspace
    finally:
        prometheus.stop()


def test_prometheus_scrapes_jobs_gpus_progress_and_the_process_with_a_scrape_token(observed) -> None:  # type: ignore[no-untyped-def]
    daemon, prometheus, gates, workspace = observed
    mounts = {"Mounts": [{"source": str(gates.root), "destination": "/gates"}, {"source": str(workspace), "destination": "/workspace"}]}
    body = {
        "task": "detectnet_v2",
        "subtask": "run",
        "args": ["sh", "-c", Gates.wait("end"), "sh", "--results_dir", "/workspace/results"],
        "launch_config": mounts,
        "gpu_indices": ["0"],
    }
    job = daemon.request("POST", "/v1/jobs", body)["id"]
    daemon.wait_for_status(job, ("running",))
    until(lambda: daemon.request("GET", f"/v1/jobs/{job}/metrics")["series"].get("gpu_utilization"), "the job's GPU samples")
    status = {"epoch": 20, "max_epoch": 80, "status": "RUNNING", "message": "Training loop in progress", "graphical": {"loss": 0.4}}
    (workspace / "results" / "status.json").write_text(json.dumps(status) + "\n")
    until(lambda: (daemon.job(job).get("progress") or {}).get("fraction") == 0.25, "the daemon reads the progress")
    daemon.request("POST", "/v1/jobs", {"task": "detectnet_v2", "subtask": "exit", "args": ["3"], "gpus": "none"})
    until(lambda: daemon.request("GET", "/v1/jobs?status=failed")["jobs"], "a failed job")

    settled = time.time()
    target = prometheus.scraped_since("tao", settled)
    assert target["health"] == "up" and target["lastError"] == "", target
    assert prometheus.query('up{job="tao"}') == {"": 1.0}
    assert prometheus.query('tao_jobs{job="tao",status=~"running|failed|succeeded"}') == {
        "status=running": 1.0,
        "status=failed": 1.0,
        "status=succeeded": 0.0,
    }
    assert prometheus.query('tao_gpus{job="tao"}') == {"state=free": 1.0, "state=held": 1.0}
    assert prometheus.query('tao_gpu_held{job="tao"}') == {"gpu=0": 1.0, "gpu=1": 0.0}
    assert prometheus.query('tao_queue_length{job="tao"}') == {"": 0.0}
    assert prometheus.query('tao_job_progress_ratio{job="tao"}') == {f"job_id={job},owner=root": 0.25}
    assert prometheus.query('process_resident_memory_bytes{job="tao"}')[""] > 10e6
    # Each device as NVML (here its stand-in, in the daemon's process) reads it, named by index and UUID.
    uuids = [gpu["uuid"] for gpu in GPUS]
    assert prometheus.query('tao_gpu_utilization_ratio{job="tao"}') == {f"gpu=0,uuid={uuids[0]}": 0.73, f"gpu=1,uuid={uuids[1]}": 0.0}
    assert prometheus.query('tao_gpu_memory_used_bytes{job="tao"}') == {
        f"gpu=0,uuid={uuids[0]}": 5000 * 2**20,
        f"gpu=1,uuid={uuids[1]}": 0.0,
    }
    assert daemon.request("GET", f"/v1/jobs/{job}/metrics")["series"]["gpu_memory_used"][-1]["value"] == 5000.0

    # A user's token may not read /metrics: its target is down, with the daemon's answer as its error.
    refused = prometheus.scraped_since("tao-as-user", settled)
    assert refused["health"] == "down" and "403" in refused["lastError"], refused
    assert prometheus.query('up{job="tao-as-user"}') == {"": 0.0}

    gates.open("end")
    daemon.wait_for_status(job, ("succeeded",))
    prometheus.scraped_since("tao", time.time())
    # Running jobs only: once the job has ended its series goes stale at the next scrape.
    assert prometheus.query('tao_job_progress_ratio{job="tao"}') == {}
    assert prometheus.query('tao_jobs{job="tao",status="succeeded"}') == {"status=succeeded": 1.0}


def test_over_the_unix_socket_admins_may_read_metrics_and_users_may_not(shared_daemon: Daemon, unprivileged_user) -> None:  # type: ignore[no-untyped-def]
    with shared_daemon.http() as client:  # root, an admin
        answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert 'tao_gpus{state="free"} 0.0' in answer.text
    _, uid, gid = unprivileged_user
    as_user = subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
         "curl", "-sS", "-w", "\n%{http_code}", "--unix-socket", str(shared_daemon.socket), "http://tao/metrics"],
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    body, status = as_user.stdout.decode().rsplit("\n", 1)
    assert status == "403" and json.loads(body)["error"]["code"] == "not_allowed"

"""The daemon's app in process: `create_app(settings, backend=FakeBackend(...))` under FastAPI's TestClient.

Real routes, services, runner, scheduler, SQLite file, log files and bearer tokens; only the
backend is the in-memory fake, so a test runs in milliseconds and controls when a job ends
(`<task> hold NAME` waits for `engine.release(NAME)`). Callers are token users: `admin`
(uid 0, an admin token), `alice` (uid 1001) and `bob` (uid 1002).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tao_server.app import create_app
from tao_server.settings import Settings
from tao_server.testing.fake_backend import FakeBackend
from tao_server.testing.fake_engine import FakeEngine
from tests.fake_nvml import NVML_ERROR_DRIVER_NOT_LOADED, FakeNvml

IMAGE = "tao-test/toolkit:1"
TASKS = ["detectnet_v2", "yolo_v4", "unet", "missing", "not_executable"]
USERS = {"admin": (0, 0, True), "alice": (1001, 1001, False), "bob": (1002, 1002, False)}
# Who a loopback "browser" is, by its client port: TestClient makes no socket for /proc/net/tcp to name.
LOOPBACK_OWNERS = {40000: 1001, 40002: 1002}


def loopback_owner(client: tuple[str, int], _server: tuple[str, int]) -> int | None:
    return LOOPBACK_OWNERS.get(client[1])


class Caller:
    """One token user's view of the API: every call carries their bearer token."""

    def __init__(self, client: TestClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, headers=self.headers, **kwargs)

    def post(self, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, headers={**self.headers, **(headers or {})}, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.delete(path, headers=self.headers, **kwargs)

    def submit(self, task: str, subtask: str | None, *args: str, expect: int = 201, **body: Any) -> dict[str, Any]:
        response = self.post("/v1/jobs", json={"task": task, "subtask": subtask, "args": list(args), **body})
        assert response.status_code == expect, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        return job

    def wait_for(self, job_id: str, *statuses: str, timeout: float = 30) -> dict[str, Any]:
        """Poll until the job is in one of `statuses` (a safety timeout only: the fake makes each step prompt)."""
        deadline = time.monotonic() + timeout
        job = self.job(job_id)
        while job["status"] not in statuses:
            assert time.monotonic() < deadline, f"job {job_id} stayed {job['status']}, never reached {statuses}"
            time.sleep(0.005)
            job = self.job(job_id)
        return job

    def logs(self, job_id: str, offset: int = 0) -> bytes:
        response = self.get(f"/v1/jobs/{job_id}/logs", params={"offset": offset})
        assert response.status_code == 200, response.text
        return response.content

    def wait_for_logs(self, job_id: str, expected: bytes, timeout: float = 30) -> None:
        """Poll until the job's log holds exactly `expected` (a safety timeout only)."""
        deadline = time.monotonic() + timeout
        while (logs := self.logs(job_id)) != expected:
            assert time.monotonic() < deadline, f"job {job_id}'s log stayed {logs!r}, never {expected!r}"
            time.sleep(0.005)


class Daemon:
    """An app in process with its fake engine, and a Caller for each token user."""

    def wait_until_released(self, timeout: float = 30) -> None:
        """Poll until the engine holds no run: the runner releases a run just after recording its end."""
        deadline = time.monotonic() + timeout
        while self.engine.runs():
            assert time.monotonic() < deadline, f"runs never released: {self.engine.runs()}"
            time.sleep(0.005)

    def __init__(self, client: TestClient, engine: FakeEngine, settings: Settings, backend: FakeBackend) -> None:
        self.client = client
        self.engine = engine
        self.backend = backend
        self.settings = settings
        self.running = True
        tokens = client.app.state.services.tokens  # type: ignore[attr-defined]
        made = {name: tokens.create(name, uid, gid, admin)[1] for name, (uid, gid, admin) in USERS.items()}
        self.admin, self.alice, self.bob = (Caller(client, made[name]) for name in ("admin", "alice", "bob"))

    def stop(self) -> None:
        """Shut the app down as SIGTERM would: workers stop, runs go on in the engine."""
        if self.running:
            self.running = False
            self.client.__exit__(None, None, None)


def write_manifest(path: Path, image: str = IMAGE) -> Path:
    repository, tag = image.rsplit(":", 1)
    entry = {"docker_registry": "", "tasks": TASKS, "subtasks": {"detectnet_v2": ["argv", "exit", "train"]}}
    path.write_text(json.dumps({"format_version": 2.0, "toolkit_version": "in-process", "dockers": {repository: {tag: entry}}}))
    return path


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(images=[IMAGE])


@pytest.fixture
def start_daemon(tmp_path: Path, engine: FakeEngine) -> Iterator[Callable[..., Daemon]]:
    """Start an app on the fake engine; a second one on the same data dir and engine is the first restarted."""
    started: list[Daemon] = []
    manifest = write_manifest(tmp_path / "manifest.json")

    def start(
        data_dir: Path | None = None, places: frozenset[str] = frozenset(), attaches: bool = False, nvml: Any = None, **settings: Any
    ) -> Daemon:
        """`places`: what the fake backend places itself, as a cluster's would ("gpus", "nodes", "time").
        `attaches`: the fake claims terminals and ports (for the checks made before any is opened).
        `nvml`: a stand-in for pynvml (tests/fake_nvml.py) for the GPUs of `gpus="0,1"`; None: one without a driver, as on
        a host with no NVIDIA GPU (whatever GPUs this host has, the in-process daemons never sample them)."""
        configured = Settings(
            data_dir=data_dir or tmp_path / "data",
            socket=tmp_path / "unused.sock",
            manifest=manifest,
            gpus=settings.pop("gpus", "none"),
            gpu_mode="env",
            # Long enough that a task answering SIGTERM is never killed first, however loaded the
            # machine; a cancel returns as soon as the task has ended, so it costs nothing.
            stop_timeout=60,
            heartbeat_interval=0.2,
            **settings,
        )
        backend = FakeBackend(engine, places=places)
        backend.attaches = attaches
        no_driver = FakeNvml(init_error=NVML_ERROR_DRIVER_NOT_LOADED)
        client = TestClient(create_app(configured, backend=backend, loopback_owner=loopback_owner, nvml=nvml or no_driver))
        client.__enter__()  # runs the lifespan: migrations, reconcile, workers
        started.append(Daemon(client, engine, configured, backend))
        return started[-1]

    yield start
    for each in started:
        each.stop()
    engine.kill_all()  # what the tests left running, as `docker rm -f` would


@pytest.fixture
def daemon(start_daemon: Callable[..., Daemon]) -> Daemon:
    return start_daemon()

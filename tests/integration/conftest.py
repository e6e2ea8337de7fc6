"""Integration fixtures: a real Docker engine, the locally built toolkit image, and real `tao-server` daemons.

Nothing here is mocked: each daemon is a `tao-server` process on a Unix socket in a temp dir, and
the tests drive it with the installed `tao` CLI, httpx and websockets.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "tao-test/toolkit:1"
SEED_TASKS = [
    "augment", "classification", "detectnet_v2", "dssd", "emotionnet", "faster_rcnn", "fpenet",
    "gazenet", "gesturenet", "heartratenet", "retinanet", "speech_to_text", "ssd", "text_classification",
    "converter", "token_classification", "unet", "yolo_v3", "yolo_v4", "yolo_v4_tiny",
]
# Tasks the manifest maps to the image although the image cannot run them as asked.
BROKEN_TASKS = ["missing", "not_executable"]
LABEL_DAEMON = "org.tao-launcher.daemon"
LABEL_JOB = "org.tao-launcher.job"


def executable(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed"
    return found


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    import docker

    client = docker.from_env()
    try:
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"integration tests need a running Docker engine ({exc}); `bash .ci/run` starts one")
    yield client
    client.close()


@pytest.fixture(scope="session")
def toolkit_image(docker_client: Any) -> str:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build-sample-image"), IMAGE], check=True, stdout=subprocess.DEVNULL)
    return IMAGE


def manifest_v2(image: str) -> dict[str, Any]:
    repository, tag = image.rsplit(":", 1)
    return {
        "format_version": 2.0,
        "toolkit_version": "test",
        "dockers": {repository: {tag: {"docker_registry": "", "tasks": SEED_TASKS + BROKEN_TASKS, "subtasks": {"detectnet_v2": ["argv", "exit", "train"]}}}},
    }


@pytest.fixture(scope="session")
def manifest_file(tmp_path_factory: pytest.TempPathFactory, toolkit_image: str) -> Path:
    path = tmp_path_factory.mktemp("manifest") / "manifest.json"
    path.write_text(json.dumps(manifest_v2(toolkit_image)))
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Daemon:
    """A real `tao-server` process on a Unix socket, and the means to drive it."""

    def __init__(self, root: Path, manifest: Path, *extra_args: str, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.socket = root / "run" / "tao.sock"
        self.data_dir = root / "data"
        self.home = root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.manifest = manifest
        self.extra_args = extra_args
        self.extra_env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> Daemon:
        command = [
            executable("tao-server"), "--data-dir", str(self.data_dir), "--socket", str(self.socket),
            "--manifest", str(self.manifest), "--stop-timeout", "5", "--gpus", "none", *self.extra_args,
        ]
        env = {**os.environ, "TAO_HEARTBEAT_INTERVAL": "0.5", **self.extra_env}
        self.log = open(self.root / "server.log", "ab")
        self.process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tao-server exited {self.process.returncode}:\n{self.server_log()}")
            try:
                with self.http() as client:
                    if client.get("/healthz").status_code == 200:
                        return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"tao-server did not answer within 30s:\n{self.server_log()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        self.process = None

    def server_log(self) -> str:
        return (self.root / "server.log").read_text(errors="replace")

    def daemon_id(self) -> str:
        return (self.data_dir / "daemon-id").read_text().strip()

    def token(self, *args: str) -> str:
        """A bearer token made with `tao-server token create ARGS` against this daemon's data dir."""
        made = subprocess.run(
            [executable("tao-server"), "token", "create", "--data-dir", str(self.data_dir), *args], capture_output=True, timeout=60, check=True
        )
        return made.stdout.decode().strip()

    def http(self) -> httpx.Client:
        return httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket)), base_url="http://tao", timeout=30)

    def env(self, **extra: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key not in ("LAUNCHER_MOUNTS", "TAO_HOST")}
        env.update(HOME=str(self.home), TAO_HOST=self.address, TAO_NO_AUTOSTART="1")
        env.update(extra)
        return env

    def tao(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run the real `tao` CLI against this daemon with no TTY and no stdin."""
        return subprocess.run(
            [executable("tao"), *args], env=env or self.env(), stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout
        )

    def popen_tao(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return subprocess.Popen([executable("tao"), *args], env=env or self.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def job(self, job_id: str) -> dict[str, Any]:
        with self.http() as client:
            return client.get(f"/v1/jobs/{job_id}").json()

    def wait_for_status(self, job_id: str, statuses: tuple[str, ...], timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["status"] in statuses:
                return job
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} stayed {job['status']}, never reached {statuses}")

    def wait_for_output(self, job_id: str, text: bytes, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in (self.data_dir / "logs" / f"{job_id}.log").read_bytes():
                return
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} never printed {text!r}")

    def remove_containers(self, docker_client: Any) -> None:
        import docker.errors

        for container in docker_client.containers.list(all=True, filters={"label": f"{LABEL_DAEMON}={self.daemon_id()}"}):
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass  # removed meanwhile: the daemon finishing a job, or the engine's own clean-up
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # 409: a removal the daemon asked for is already in progress
                    raise


def job_containers(docker_client: Any, job_id: str) -> list[str]:
    """Ids of the job's containers, running or not."""
    return [c["Id"] for c in docker_client.api.containers(all=True, filters={"label": f"{LABEL_JOB}={job_id}"})]


def containers_gone(docker_client: Any, job_id: str, timeout: float = 10) -> bool:
    """After a normal end the daemon removes the container just after recording the exit code."""
    deadline = time.monotonic() + timeout
    while job_containers(docker_client, job_id):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, manifest_file: Path, docker_client: Any) -> Iterator[Daemon]:
    running = Daemon(tmp_path_factory.mktemp("daemon"), manifest_file).start()
    yield running
    running.stop()
    running.remove_containers(docker_client)


@pytest.fixture
def new_daemon(tmp_path: Path, manifest_file: Path, docker_client: Any) -> Iterator[Any]:
    """A factory for daemons a test starts, stops and restarts itself."""
    made: list[Daemon] = []

    def make(*args: str, root: Path | None = None, manifest: Path | None = None, env: dict[str, str] | None = None) -> Daemon:
        made.append(Daemon(root or tmp_path / f"daemon{len(made)}", manifest or manifest_file, *args, env=env))
        return made[-1]

    yield make
    for each in made:
        each.stop(signal.SIGKILL)
        if (each.data_dir / "daemon-id").exists():
            each.remove_containers(docker_client)


def write_mounts(path: Path, config: Any) -> Path:
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    return path


def job_id_of(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode().strip().splitlines()[-1]


def local_account(name: str) -> tuple[str, int, int]:
    """A real Unix account for the tests, made with useradd when missing: (name, uid, gid)."""
    import pwd

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
        entry = pwd.getpwnam(name)
    return name, entry.pw_uid, entry.pw_gid


@pytest.fixture(scope="session")
def unprivileged_user() -> tuple[str, int, int]:
    return local_account("tao-test-user")


@pytest.fixture
def shared_daemons(new_daemon) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """A factory for daemons whose socket every local user may reach (--socket-mode 0666).

    Each gets `shared_root`, a world-readable directory for the files other users need.
    """
    import tempfile

    made: list[tuple[Daemon, Path]] = []

    def make(*args: str, manifest: Path | None = None) -> Daemon:
        root = Path(tempfile.mkdtemp(prefix="tao-shared-"))  # pytest's tmp_path is closed to other users
        root.chmod(0o755)
        daemon = new_daemon("--socket-mode", "0666", *args, root=root / "daemon", manifest=manifest).start()
        daemon.shared_root = root  # type: ignore[attr-defined]
        made.append((daemon, root))
        return daemon

    yield make
    for daemon, root in made:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def shared_daemon(shared_daemons) -> Daemon:  # type: ignore[no-untyped-def]
    return shared_daemons()


def tao_as(
    daemon: Daemon,
    user: tuple[str, int, int],
    *args: str,
    groups: list[int] | None = None,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run `tao` as another local user (setpriv), against `daemon`, with only `groups` as supplementary groups.

    `input` is its standard input (e.g. a password for --password-stdin); without it, none.
    """
    _, uid, gid = user
    membership = f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups"
    stdin: dict[str, Any] = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={gid}", membership, executable("tao"), *args],
        env=daemon.env(HOME=str(daemon.shared_root), **(env or {})),  # type: ignore[attr-defined]
        capture_output=True, timeout=120, **stdin,
    )


@pytest.fixture(scope="session")
def test_group() -> tuple[str, int]:
    """A real Unix group for the tests, made with groupadd: (name, gid)."""
    import grp

    name = "tao-test-group"
    try:
        return name, grp.getgrnam(name).gr_gid
    except KeyError:
        subprocess.run(["groupadd", name], check=True)
        return name, grp.getgrnam(name).gr_gid

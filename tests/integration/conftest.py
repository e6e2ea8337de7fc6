"""Integration fixtures: real `tao-server` daemons on the real engine, real accounts, real files.

Nothing here is mocked: each daemon is a `tao-server` process on a Unix socket in a temp dir
(tao_server.testing.daemon), and the tests drive it with the installed `tao` CLI, httpx and
websockets. The engine and the toolkit image come from tests/conftest.py.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tao_server.testing.daemon import LABEL_JOB, Daemon, executable
from tao_server.testing.registry import Registry, build_variant, layer_digests, remove_local

SEED_TASKS = [
    "augment",
    "classification",
    "detectnet_v2",
    "dssd",
    "emotionnet",
    "faster_rcnn",
    "fpenet",
    "gazenet",
    "gesturenet",
    "heartratenet",
    "retinanet",
    "speech_to_text",
    "ssd",
    "text_classification",
    "converter",
    "token_classification",
    "unet",
    "yolo_v3",
    "yolo_v4",
    "yolo_v4_tiny",
]
# Tasks the manifest maps to the image although the image cannot run them as asked.
BROKEN_TASKS = ["missing", "not_executable"]


def manifest_v2(image: str) -> dict[str, Any]:
    repository, tag = image.rsplit(":", 1)
    return {
        "format_version": 2.0,
        "toolkit_version": "test",
        "dockers": {
            repository: {
                tag: {"docker_registry": "", "tasks": SEED_TASKS + BROKEN_TASKS, "subtasks": {"detectnet_v2": ["argv", "exit", "train"]}}
            }
        },
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


def make_daemon(root: Path, manifest: Path, *args: str, env: dict[str, str] | None = None) -> Daemon:
    """A daemon for the tests: heartbeats every half second, so quiet streams show theirs quickly."""
    return Daemon(root, manifest, *args, env={"TAO_HEARTBEAT_INTERVAL": "0.5", **(env or {})})


def until(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Wait for `condition`; the timeout is a safety net, never a bet on how fast something is."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def in_line(daemon: Daemon, job_id: str) -> dict[str, Any]:
    """The job once its image is found here and it waits for devices: the daemon looks for the image
    just after the job joins the line, and until then it waits aside (gpu_wait.reason "image")."""
    shown: dict[str, Any] = {}

    def looked() -> bool:
        shown.update(daemon.job(job_id))
        return shown["status"] != "queued" or (shown.get("gpu_wait") or {}).get("reason") != "image"

    until(looked, f"job {job_id}'s image is found")
    return shown


def job_log(daemon: Daemon, job_id: str) -> bytes:
    """The job's log file as the daemon wrote it."""
    return (daemon.data_dir / "logs" / f"{job_id}.log").read_bytes()


def running_job(daemon: Daemon) -> str:
    """The id of the (only) running job, once there is one: for jobs started by an attached `tao`."""
    found: list[str] = []

    def started() -> bool:
        with daemon.http() as client:
            found[:] = [job["id"] for job in client.get("/v1/jobs", params={"status": "running"}).json()["jobs"]]
        return bool(found)

    until(started, "a job runs", timeout=60)
    return found[0]


def consecutive_ticks(output: bytes) -> None:
    """The sample task's `ticks` output, ended by SIGTERM: every line once, in order."""
    lines = output.decode().splitlines()
    assert lines[-1] == "got SIGTERM", lines[-3:]
    assert lines[:-1] == [f"tick {n}" for n in range(1, len(lines))], "a line was lost or written twice"


def job_containers(docker_client: Any, job_id: str) -> list[str]:
    """Ids of the job's containers, running or not."""
    return [c["Id"] for c in docker_client.api.containers(all=True, filters={"label": f"{LABEL_JOB}={job_id}"})]


def containers_gone(docker_client: Any, job_id: str, timeout: float = 120) -> bool:
    """After a normal end the daemon removes the container just after recording the exit code.

    The timeout is a safety net: on a loaded machine a stop (SIGTERM, the stop timeout, SIGKILL) and the
    engine's removal take tens of seconds.
    """
    deadline = time.monotonic() + timeout
    while job_containers(docker_client, job_id):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class Gates:
    """Files a job's shell waits for, in a directory its launcher config mounts at /gates.

    The test decides when the job goes on (`open`), instead of guessing how long a sleep lasts.
    """

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.mounts = write_mounts(root.parent / "gates.json", {"Mounts": [{"source": str(root), "destination": "/gates"}]})

    @staticmethod
    def wait(name: str) -> str:
        """A shell snippet that returns once the gate `name` is open."""
        return f"while [ ! -e /gates/{name} ]; do sleep 0.05; done"

    def open(self, name: str) -> None:
        (self.root / name).touch()


REPOSITORY = "tao/toolkit"  # the toolkit image's repository in the test registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, toolkit_image: str) -> Iterator[tuple[Registry, str, str, str]]:
    """A registry on 127.0.0.1 holding a variant of the toolkit image, absent from the engine.

    (registry, reference, digest, blob digest of the image's own layer).
    """
    root = tmp_path_factory.mktemp("registry")
    running = Registry(root, free_port()).start()
    variant = build_variant(toolkit_image, "tao-test/pullable:1", root)
    reference, digest = running.push(variant, f"{REPOSITORY}:1")
    remove_local(reference, variant)
    own_layer = layer_digests(running, REPOSITORY, "1")[-1]
    yield running, reference, digest, own_layer
    running.stop()
    remove_local(reference)


@pytest.fixture
def gates(tmp_path: Path) -> Gates:
    return Gates(tmp_path / "gates")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, manifest_file: Path, docker_client: Any) -> Iterator[Daemon]:
    running = make_daemon(tmp_path_factory.mktemp("daemon"), manifest_file).start()
    yield running
    running.stop()
    running.remove_containers()


@pytest.fixture
def new_daemon(tmp_path: Path, manifest_file: Path, docker_client: Any) -> Iterator[Any]:
    """A factory for daemons a test starts, stops and restarts itself."""
    made: list[Daemon] = []

    def make(*args: str, root: Path | None = None, manifest: Path | None = None, env: dict[str, str] | None = None) -> Daemon:
        made.append(make_daemon(root or tmp_path / f"daemon{len(made)}", manifest or manifest_file, *args, env=env))
        return made[-1]

    yield make
    for each in made:
        each.stop(signal.SIGKILL)
        each.remove_containers()


def write_mounts(path: Path, config: Any) -> Path:
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    return path


def job_id_of(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode().strip().splitlines()[-1]


_made_accounts: list[str] = []
_made_groups: list[str] = []
# Every test session holds this lock shared while it runs; the one that can take it alone at its end
# is the last, and only it removes the accounts. Two sessions at once (two checkouts on one machine)
# otherwise remove each other's accounts mid-run.
_ACCOUNTS_LOCK = "/run/tao-test-accounts.lock"
_ACCOUNTS_MADE = "/run/tao-test-accounts.made"  # what any session made, for the last one to remove


def local_account(name: str) -> tuple[str, int, int]:
    """A real Unix account for the tests, made with useradd when missing (and removed at the end): (name, uid, gid)."""
    import pwd

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        made = subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], capture_output=True)
        if made.returncode not in (0, 9):  # 9: another session made it between the look-up and here
            raise RuntimeError(f"useradd {name}: {made.stderr.decode(errors='replace').strip()}") from None
        _made_accounts.append(name)
        with open(_ACCOUNTS_MADE, "a") as made_file:
            made_file.write(f"user {name}\n")
        entry = pwd.getpwnam(name)
    return name, entry.pw_uid, entry.pw_gid


@pytest.fixture(scope="session", autouse=True)
def _remove_made_accounts() -> Iterator[None]:
    """The accounts and groups the tests made leave with the last session that uses them: the machine is as it was."""
    import fcntl

    with open(_ACCOUNTS_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        yield
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another session still runs: it removes them when it ends
        made = [line.split() for line in Path(_ACCOUNTS_MADE).read_text().splitlines()] if os.path.exists(_ACCOUNTS_MADE) else []
        for kind, name in reversed([entry for entry in made if len(entry) == 2]):
            # userdel also removes the user's own group
            subprocess.run(["userdel" if kind == "user" else "groupdel", name], capture_output=True)
        for name in reversed(_made_accounts):
            subprocess.run(["userdel", name], capture_output=True)
        for name in reversed(_made_groups):
            subprocess.run(["groupdel", name], capture_output=True)
        Path(_ACCOUNTS_MADE).unlink(missing_ok=True)


@pytest.fixture
def unprivileged_user() -> tuple[str, int, int]:
    """The test account, looked up for each test: made again should it be gone (CI runs twice lost it mid-run)."""
    return local_account("tao-test-user")


@pytest.fixture
def shared_daemons(new_daemon) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """A factory for daemons whose socket every local user may reach (--socket-mode 0666).

    Each gets a world-readable `home` (HOME for `tao`), for the files other users need.
    """
    import tempfile

    made: list[tuple[Daemon, Path]] = []

    def make(*args: str, manifest: Path | None = None) -> Daemon:
        root = Path(tempfile.mkdtemp(prefix="tao-shared-"))  # pytest's tmp_path is closed to other users
        root.chmod(0o755)
        daemon = new_daemon("--socket-mode", "0666", *args, root=root / "daemon", manifest=manifest).start()
        daemon.home = root
        made.append((daemon, root))
        return daemon

    yield make
    for daemon, root in made:
        daemon.stop()
        daemon.remove_containers()  # while its data dir still names it: new_daemon's own clean-up comes after the rmtree
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
        env=daemon.env(HOME=str(daemon.home), **(env or {})),
        capture_output=True,
        timeout=120,
        **stdin,
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
        _made_groups.append(name)
        with open(_ACCOUNTS_MADE, "a") as made_file:
            made_file.write(f"group {name}\n")
        return name, grp.getgrnam(name).gr_gid


def terminate_daemon(data_dir: Path) -> bool:
    """SIGTERM the daemon that holds `data_dir` (its pid is in daemon.lock); True once it has ended.

    It is not this process's child, so it is waited for through a pidfd, which becomes readable
    when the process ends.
    """
    lock = data_dir / "daemon.lock"
    pid = lock.read_text().strip() if lock.exists() else ""
    if not pid:
        return True
    try:
        pidfd = os.pidfd_open(int(pid))
    except ProcessLookupError:
        return True
    try:
        os.kill(int(pid), signal.SIGTERM)
        readable, _, _ = select.select([pidfd], [], [], 60)
        return bool(readable)
    finally:
        os.close(pidfd)

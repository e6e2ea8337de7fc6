"""Pulls against a real registry on 127.0.0.1: logins (each user's own), progress, one pull for many jobs, digests, policies."""

from __future__ import annotations

import json
import queue
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tao_server.testing.daemon import Daemon, executable
from tao_server.testing.registry import PASSWORD, USERNAME, HeldBlobs, Registry, remove_local
from tests.integration.conftest import REPOSITORY, free_port, job_id_of, local_account, tao_as

pytestmark = pytest.mark.integration


def _manifest(path: Path, registry: Registry | HeldBlobs, digest: str | None = None, tag: str = "1") -> Path:
    entry: dict[str, Any] = {"docker_registry": registry.host, "tasks": ["detectnet_v2", "yolo_v4"]}
    if digest is not None:
        entry["docker_digest"] = digest
    path.write_text(json.dumps({"format_version": 2.0, "toolkit_version": "registry-test", "dockers": {REPOSITORY: {tag: entry}}}))
    return path


def _login(daemon: Daemon, host: str, password: str = PASSWORD) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [executable("tao"), "login", host, "-u", USERNAME, "--password-stdin"],
        input=password.encode() + b"\n",
        env=daemon.env(),
        capture_output=True,
        timeout=60,
    )


def _events(daemon: Daemon, job_id: str) -> list[dict[str, Any]]:
    """The job's pull events' data (beside them, an `image` event names the image the job started from)."""
    with daemon.http() as client:
        return [event["data"] for event in client.get(f"/v1/jobs/{job_id}/events").json()["events"] if event["type"] == "pull"]


@pytest.fixture
def pulling_daemon(new_daemon, tmp_path: Path, registry) -> Daemon:  # type: ignore[no-untyped-def]
    reg, reference, _, _ = registry
    remove_local(reference)
    return new_daemon(manifest=_manifest(tmp_path / "manifest.json", reg)).start()


def test_a_job_pulls_its_image_with_a_stored_login_and_shows_progress(new_daemon, tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    reg, reference, _, own_layer = registry
    # The layer's download waits for the test, so the pull is under way for as long as it looks,
    # however fast the machine: the progress `tao` draws meanwhile is what is checked.
    relay = HeldBlobs(reg.host, own_layer)
    held_reference = reference.replace(reg.host, relay.host)
    try:
        daemon = new_daemon(manifest=_manifest(tmp_path / "manifest.json", relay)).start()
        login = _login(daemon, relay.host)
        assert login.returncode == 0, login.stderr
        assert f"Login stored for {relay.host} ({USERNAME})".encode() in login.stdout

        tao = daemon.popen_tao("detectnet_v2", "exit", "0")
        stderr = _Lines(tao)
        stderr.until(f"tao: pulling {held_reference}".encode())  # plain progress lines without a terminal
        assert relay.held.wait(60), "the engine never asked for the layer"
        relay.release()
        assert tao.stdout is not None
        stdout = tao.stdout.read()
        assert tao.wait(timeout=120) == 0, stderr.rest()
        assert stdout == b"exiting with 0\n"

        job = json.loads(daemon.tao("list", "--all", "--json").stdout)[0]  # the newest
        events = _events(daemon, job["id"])
        assert any(event.get("total") for event in events), "no download progress with byte counts"
        assert any(event["status"] == "Pull complete" for event in events)
        assert events[-1]["status"] == "pulled"
        assert reg.blob_downloads(own_layer) >= 1
    finally:
        relay.close()
        remove_local(held_reference)


class _Lines:
    """A process's stderr, line by line, read in a thread as it comes."""

    def __init__(self, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
        self._lines: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._timeout = timeout
        self.seen = b""
        stream = process.stderr
        assert stream is not None

        def read() -> None:
            for line in iter(stream.readline, b""):
                self._lines.put(line)
            self._lines.put(b"")  # the end

        threading.Thread(target=read, daemon=True).start()

    def until(self, wanted: bytes) -> None:
        """Read up to the line that holds `wanted`; fail if the process ends or goes quiet first."""
        while wanted not in self.seen:
            line = self._lines.get(timeout=self._timeout)
            assert line, f"the process ended without printing {wanted!r}; its stderr: {self.seen!r}"
            self.seen += line

    def rest(self) -> bytes:
        """Everything it wrote, once it has ended."""
        while line := self._lines.get(timeout=self._timeout):
            self.seen += line
        return self.seen


def test_logins_are_kept_secret(pulling_daemon: Daemon, registry) -> None:  # type: ignore[no-untyped-def]
    reg = registry[0]
    assert _login(pulling_daemon, reg.host).returncode == 0
    assert pulling_daemon.tao("yolo_v4", "exit", "0").returncode == 0
    with pulling_daemon.http() as client:
        listed = client.get("/v1/credentials").json()
        jobs = client.get("/v1/jobs").text
    assert listed == [{"registry": reg.host, "username": USERNAME, "owner_uid": None}]  # root's: the daemon's own
    stored = pulling_daemon.data_dir / "credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert PASSWORD not in jobs
    assert PASSWORD not in pulling_daemon.server_log()
    for log in (pulling_daemon.data_dir / "logs").iterdir():
        assert PASSWORD not in log.read_text(errors="replace")
    forgotten = pulling_daemon.tao("logout", reg.host)
    assert forgotten.returncode == 0
    assert f"Login removed for {reg.host} ({USERNAME})".encode() in forgotten.stdout
    with pulling_daemon.http() as client:
        assert client.get("/v1/credentials").json() == []


def test_a_wrong_password_and_a_missing_login_are_clear_errors(pulling_daemon: Daemon, registry) -> None:  # type: ignore[no-untyped-def]
    reg = registry[0]
    refused = _login(pulling_daemon, reg.host, password="wrong")
    assert refused.returncode == 125
    assert f"registry {reg.host} refused the login".encode() in refused.stderr
    result = pulling_daemon.tao("detectnet_v2", "exit", "0")
    assert result.returncode == 125
    assert f"registry {reg.host} refused access".encode() in result.stderr
    assert f"tao login {reg.host}".encode() in result.stderr
    job = json.loads(pulling_daemon.tao("list", "--all", "--json").stdout)[0]  # the newest
    assert job["status"] == "error" and job["exit_code"] == 125


def test_concurrent_jobs_share_one_pull(pulling_daemon: Daemon, registry) -> None:  # type: ignore[no-untyped-def]
    reg, _, _, own_layer = registry
    assert _login(pulling_daemon, reg.host).returncode == 0
    before = reg.blob_downloads(own_layer)
    with _registry_paused(reg):  # the pull cannot end before all three jobs ask for the image
        runs = [pulling_daemon.popen_tao(task, "exit", "0") for task in ["detectnet_v2", "yolo_v4", "detectnet_v2"]]
        deadline = time.monotonic() + 60
        while len(shared := [job for job in _jobs(pulling_daemon) if _shared(pulling_daemon, job["id"])]) < 2:
            assert time.monotonic() < deadline, "the second and third jobs never joined the first one's pull"
            time.sleep(0.05)
    results = [(run.communicate(timeout=120), run.returncode) for run in runs]
    assert [code for _, code in results] == [0, 0, 0], [err for (_, err), _ in results]
    assert reg.blob_downloads(own_layer) - before == 1
    assert len(shared) == 2 and len(_jobs(pulling_daemon)) == 3


def test_pinned_digest_is_pulled_and_a_different_local_image_is_not_used(new_daemon, tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    reg, reference, digest, _ = registry
    remove_local(reference)
    pinned = new_daemon(manifest=_manifest(tmp_path / "pinned.json", reg, digest=digest)).start()
    assert _login(pinned, reg.host).returncode == 0
    assert pinned.tao("detectnet_v2", "exit", "0").returncode == 0

    # The tag is now present locally, but a manifest pinning another digest must not run it.
    wrong = "sha256:" + "0" * 64
    other = new_daemon(manifest=_manifest(tmp_path / "wrong.json", reg, digest=wrong)).start()
    assert _login(other, reg.host).returncode == 0
    result = other.tao("detectnet_v2", "exit", "0")
    assert result.returncode == 125
    assert f"{REPOSITORY}:1@{wrong}".encode() in result.stderr
    assert b"was not found in registry" in result.stderr


def test_pull_policies_and_tao_pull(pulling_daemon: Daemon, registry) -> None:  # type: ignore[no-untyped-def]
    reg, reference, _, own_layer = registry
    never = pulling_daemon.tao("--pull", "never", "detectnet_v2", "exit", "0")
    assert never.returncode == 125
    assert b"the job's pull policy is never" in never.stderr

    assert _login(pulling_daemon, reg.host).returncode == 0
    images = json.loads(pulling_daemon.tao("images", "--json").stdout)
    assert [(image["reference"], image["present"]) for image in images] == [(reference, False)]
    pulled = pulling_daemon.tao("pull", "detectnet_v2")
    assert pulled.returncode == 0, pulled.stderr
    assert f"{reference} is ready".encode() in pulled.stderr
    assert json.loads(pulling_daemon.tao("images", "--json").stdout)[0]["present"] is True
    assert pulling_daemon.tao("--pull", "never", "detectnet_v2", "exit", "0").returncode == 0

    before = reg.blob_downloads(own_layer)
    always = pulling_daemon.tao("--pull", "always", "yolo_v4", "exit", "0")
    assert always.returncode == 0
    job = json.loads(pulling_daemon.tao("list", "--all", "--json").stdout)[0]  # the newest
    assert job["pull_policy"] == "always"
    assert any(event["status"] == "pulled" for event in _events(pulling_daemon, job["id"]))
    assert reg.blob_downloads(own_layer) == before  # the layers are there: the registry was asked, nothing fetched again


def test_an_unreachable_registry_is_a_clear_error(new_daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    nowhere = Registry(tmp_path, free_port())  # never started
    daemon = new_daemon(manifest=_manifest(tmp_path / "nowhere.json", nowhere)).start()
    result = daemon.tao("detectnet_v2", "exit", "0")
    assert result.returncode == 125
    assert f"registry {nowhere.host} is unreachable".encode() in result.stderr


# -- each user's own logins ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def another_user() -> tuple[str, int, int]:
    """A second real account besides `unprivileged_user`, so that two users' logins can be told apart."""
    return local_account("tao-test-user2")


@pytest.fixture
def shared_pulling_daemon(shared_daemons, tmp_path: Path, registry) -> Daemon:  # type: ignore[no-untyped-def]
    """A daemon every local user may reach (socket mode 0666) whose tasks pull from the test registry; the image absent."""
    reg, reference, _, _ = registry
    remove_local(reference)
    return shared_daemons(manifest=_manifest(tmp_path / "manifest.json", reg))


def _login_as(daemon: Daemon, user: tuple[str, int, int], host: str) -> subprocess.CompletedProcess[bytes]:
    return tao_as(daemon, user, "login", host, "-u", USERNAME, "--password-stdin", input=PASSWORD.encode() + b"\n")


def _stored_logins(daemon: Daemon, user: tuple[str, int, int]) -> list[list[str]]:
    """`tao login --list` as `user`: its rows below the header, split into cells."""
    listed = tao_as(daemon, user, "login", "--list")
    assert listed.returncode == 0, listed.stderr
    return [line.split(None, 2) for line in listed.stdout.decode().splitlines()[1:]] if b"REGISTRY" in listed.stdout else []


@contextmanager
def _registry_paused(registry: Registry) -> Iterator[None]:
    """Hold every request the registry gets until the block ends, so that pulls overlap for certain."""
    assert registry.process is not None
    registry.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        registry.process.send_signal(signal.SIGCONT)


def _jobs(daemon: Daemon) -> list[dict[str, Any]]:
    with daemon.http() as client:
        jobs: list[dict[str, Any]] = client.get("/v1/jobs").json()["jobs"]
    return jobs


def _shared(daemon: Daemon, job_id: str) -> bool:
    return any("already running" in event["status"] for event in _events(daemon, job_id))


def test_each_user_pulls_with_their_own_login(shared_pulling_daemon: Daemon, registry, unprivileged_user, another_user) -> None:  # type: ignore[no-untyped-def]
    daemon, (reg, reference, _, _) = shared_pulling_daemon, registry
    alice, bob = another_user, unprivileged_user
    stored = _login_as(daemon, alice, reg.host)
    assert stored.returncode == 0, stored.stderr
    assert f"Login stored for {reg.host} ({USERNAME}) for uid {alice[1]}".encode() in stored.stdout

    assert _stored_logins(daemon, bob) == []
    assert _stored_logins(daemon, alice) == [[reg.host, USERNAME, f"uid {alice[1]}"]]
    with daemon.http() as client:
        assert client.get("/v1/credentials").json() == []  # nor did it become the daemon's shared login

    ahead = tao_as(daemon, bob, "pull", "detectnet_v2")
    assert ahead.returncode == 125
    assert b"(unauthorized)" in ahead.stderr
    refused = tao_as(daemon, bob, "detectnet_v2", "exit", "0")
    assert refused.returncode == 125
    assert f"registry {reg.host} refused access to {reference} (unauthorized)".encode() in refused.stderr
    assert f"tao login {reg.host}".encode() in refused.stderr
    pulled = tao_as(daemon, alice, "detectnet_v2", "exit", "0")
    assert pulled.returncode == 0, pulled.stderr

    # The engine is shared: once pulled, the image runs for anyone whose pull policy takes it as it is.
    assert tao_as(daemon, bob, "--pull", "missing", "detectnet_v2", "exit", "0").returncode == 0
    asked = tao_as(daemon, bob, "--pull", "always", "detectnet_v2", "exit", "0")
    assert asked.returncode == 125
    assert b"(unauthorized)" in asked.stderr

    assert _login_as(daemon, bob, reg.host).returncode == 0
    assert _stored_logins(daemon, bob) == [[reg.host, USERNAME, f"uid {bob[1]}"]]
    remove_local(reference)
    own = tao_as(daemon, bob, "--pull", "always", "yolo_v4", "exit", "0")
    assert own.returncode == 0, own.stderr
    assert tao_as(daemon, bob, "pull", "detectnet_v2").returncode == 0

    forgotten = tao_as(daemon, bob, "logout", reg.host)
    assert forgotten.returncode == 0
    assert f"Login removed for {reg.host} ({USERNAME}): the login of uid {bob[1]}".encode() in forgotten.stdout
    assert _stored_logins(daemon, bob) == []
    assert _stored_logins(daemon, alice) == [[reg.host, USERNAME, f"uid {alice[1]}"]]
    assert tao_as(daemon, bob, "logout", reg.host).returncode == 125  # nothing of bob's is left to forget

    stored_file = json.loads((daemon.data_dir / "credentials.json").read_text())
    assert list(stored_file["users"]) == [str(alice[1])]
    assert PASSWORD not in daemon.server_log()


def test_the_daemons_login_serves_users_without_their_own_and_its_pulls_are_shared(  # type: ignore[no-untyped-def]
    shared_pulling_daemon: Daemon, registry, unprivileged_user
) -> None:
    daemon, (reg, _, _, own_layer) = shared_pulling_daemon, registry
    bob = unprivileged_user
    shared = _login(daemon, reg.host)  # root's login: the daemon's own
    assert shared.returncode == 0, shared.stderr
    assert b"as the daemon's shared login" in shared.stdout
    assert _stored_logins(daemon, bob) == []

    before = reg.blob_downloads(own_layer)
    with _registry_paused(reg):
        mine = job_id_of(daemon.tao("-d", "detectnet_v2", "exit", "0"))
        daemon.wait_for_status(mine, ("pulling",))
        theirs = job_id_of(tao_as(daemon, bob, "-d", "yolo_v4", "exit", "0"))
        # The same login, so the same pull: whichever job asked first owns it, the other waits on it.
        deadline = time.monotonic() + 30
        while not (_shared(daemon, mine) or _shared(daemon, theirs)):
            assert time.monotonic() < deadline, "the two jobs never shared a pull"
            time.sleep(0.05)
    for job_id in (mine, theirs):
        assert daemon.wait_for_status(job_id, ("succeeded", "failed", "error"))["status"] == "succeeded"
    assert reg.blob_downloads(own_layer) - before == 1


def test_pulls_with_different_logins_are_never_shared(shared_pulling_daemon: Daemon, registry, unprivileged_user, another_user) -> None:  # type: ignore[no-untyped-def]
    daemon, (reg, reference, _, _) = shared_pulling_daemon, registry
    alice, bob = another_user, unprivileged_user
    assert _login_as(daemon, alice, reg.host).returncode == 0
    with _registry_paused(reg):
        alices = job_id_of(tao_as(daemon, alice, "-d", "detectnet_v2", "exit", "0"))
        daemon.wait_for_status(alices, ("pulling",))
        bobs = job_id_of(tao_as(daemon, bob, "-d", "yolo_v4", "exit", "0"))
        daemon.wait_for_status(bobs, ("pulling",))
    assert daemon.wait_for_status(alices, ("succeeded", "failed", "error"))["status"] == "succeeded"
    failed = daemon.wait_for_status(bobs, ("succeeded", "failed", "error"))
    assert (failed["status"], failed["exit_code"]) == ("error", 125)
    assert f"registry {reg.host} refused access to {reference} (unauthorized)" in failed["error"]
    assert not _shared(daemon, alices) and not _shared(daemon, bobs)

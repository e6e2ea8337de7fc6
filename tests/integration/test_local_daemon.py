"""The daemon `tao` starts for its user, through the real CLI with a fresh HOME and no TAO_HOST.

The notice `tao` gives when it starts one; `tao daemon status|start|stop|restart|logs`; the warning
when the caller's TAO_* settings differ from the daemon's; a daemon that cannot start, reported in
its own words; and where `tao` starts nothing: an explicit address without TAO_AUTOSTART, a
directory other users may enter, another user's or a service's daemon.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tao_server.testing.daemon import Daemon, StartedByTao, executable
from tests.integration.conftest import Gates, job_id_of, manifest_v2

pytestmark = pytest.mark.integration


@pytest.fixture
def user(tmp_path: Path, manifest_file: Path, docker_client: Any) -> Iterator[StartedByTao]:
    """A user with a fresh HOME, a private XDG_RUNTIME_DIR and no TAO_HOST, and no daemon yet."""
    daemon = StartedByTao(tmp_path / "user", manifest_file)
    daemon.runtime.mkdir(mode=0o700, parents=True)
    yield daemon
    daemon.stop()
    daemon.remove_containers()


def tao(user: StartedByTao, *args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    """The real `tao`, in the user's own environment plus `env`."""
    return subprocess.run([executable("tao"), *args], env=user.user_env(**env), stdin=subprocess.DEVNULL, capture_output=True, timeout=120)


def ended(pid: int) -> bool:
    """The process has ended: gone, or a zombie nobody has reaped yet."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] == b"Z"
    except FileNotFoundError:
        return True


def lock_free(path: Path) -> bool:
    with open(path) as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
    return True


def test_the_first_command_starts_a_daemon_says_so_once_and_tao_daemon_shows_and_stops_it(user: StartedByTao) -> None:
    first = tao(user, "detectnet_v2", "exit", "0")
    assert first.returncode == 0, first.stderr
    pid = user.pid()
    assert pid is not None
    notices = [line for line in first.stderr.decode().splitlines() if line.startswith("tao: started")]
    log = user.data_dir / "daemon.log"
    assert notices == [f"tao: started tao-server (pid {pid}) for you; log: {log}; stop it with: tao daemon stop"]
    assert b"tao: started" not in tao(user, "list").stderr  # once: the next command finds it

    status = tao(user, "daemon", "status")
    assert status.returncode == 0, status.stderr
    shown = status.stdout.decode()
    for expected in (
        f"pid {pid}, started by tao",
        f"address:   unix://{user.socket}",
        f"data dir:  {user.data_dir}",
        f"log:       {log}",
        f"manifest:  {user.manifest}",
        "dashboard: http://127.0.0.1:",
        "settings:  as this environment's",
        "stop it:   tao daemon stop",
    ):
        assert expected in shown, shown
    reported = json.loads(tao(user, "daemon", "status", "--json").stdout)
    assert reported["running"] and reported["daemon"]["pid"] == pid and reported["differences"] == []
    assert f"dashboard: {reported['daemon']['dashboard']}" in tao(user, "info").stdout.decode()

    stopped = tao(user, "daemon", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped tao-server (pid {pid})" in stopped.stdout.decode()
    # It returned once everything was gone, not merely asked.
    assert ended(pid) and not user.socket.exists() and lock_free(user.data_dir / "daemon.lock")
    after = tao(user, "daemon", "status")
    assert after.returncode == 3 and f"no daemon answers at unix://{user.socket}" in after.stdout.decode()
    assert tao(user, "daemon", "stop").returncode == 0  # nothing to stop is not an error
    assert b"Traceback" not in log.read_bytes()


def test_a_setting_exported_after_the_start_is_warned_about_and_restart_takes_it(
    user: StartedByTao, gates: Gates, tmp_path: Path, toolkit_image: str
) -> None:
    assert tao(user, "list").returncode == 0  # starts the daemon with the first manifest
    job_id = job_id_of(tao(user, "--mounts", str(gates.mounts), "-d", "unet", "run", "sh", "-c", f"echo up; {gates.wait('go')}; exit 3"))
    other = tmp_path / "other-manifest.json"
    other.write_text(json.dumps({**manifest_v2(toolkit_image), "toolkit_version": "other"}))

    listed = tao(user, "list", TAO_MANIFEST=str(other))
    assert listed.returncode == 0
    warning = listed.stderr.decode()
    assert f"tao: warning: the daemon tao started for you (pid {user.pid()}) runs with other TAO_* settings" in warning
    assert f"TAO_MANIFEST: {other} here, {user.manifest} in the daemon" in warning
    assert "tao daemon restart" in warning

    restarted = tao(user, "daemon", "restart", TAO_MANIFEST=str(other))
    assert restarted.returncode == 0, restarted.stderr
    reported = json.loads(tao(user, "daemon", "status", "--json", TAO_MANIFEST=str(other)).stdout)
    assert reported["daemon"]["manifest"] == str(other) and reported["differences"] == []
    assert tao(user, "list", TAO_MANIFEST=str(other)).stderr == b""
    gates.open("go")
    followed = tao(user, "logs", "-f", job_id, TAO_MANIFEST=str(other))
    assert (followed.returncode, followed.stdout) == (3, b"up\n")  # the job ran on across the restart


def test_a_daemon_that_cannot_start_is_reported_in_its_own_words(user: StartedByTao, tmp_path: Path) -> None:
    broken = tmp_path / "trailing-comma.json"
    text = '{"format_version": 2.0, "dockers": {"a/b": {"1": {"docker_registry": "", "tasks": ["x"],}}}}'
    broken.write_text(text)
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    ran = tao(user, "list", TAO_MANIFEST=str(broken))
    assert ran.returncode == 125
    said = ran.stderr.decode()
    assert f"tao: error: tao-server could not start at unix://{user.socket}: it exited (2), saying:" in said
    assert f"{broken}: line 1, column {expected.value.colno}: invalid JSON" in said
    assert f"(its log: {user.data_dir / 'daemon.log'})" in said
    assert "nothing answers" not in said and "Traceback" not in said
    assert not user.socket.exists()
    log = tao(user, "daemon", "logs", "-n", "1")  # the log of the start that failed, with nothing answering
    assert log.returncode == 0 and f"line 1, column {expected.value.colno}".encode() in log.stdout


def test_a_corrupt_database_is_reported_by_tao_in_the_daemons_one_line(user: StartedByTao) -> None:
    user.data_dir.mkdir(mode=0o700)
    (user.data_dir / "tao.db").write_bytes(os.urandom(16384))
    ran = tao(user, "list")
    assert ran.returncode == 125
    [line] = [line for line in ran.stderr.decode().splitlines() if "job table" in line]
    assert f"tao-server: error: the job table {user.data_dir / 'tao.db'} cannot be used (file is not a database)" in line
    assert "restore it from a backup" in line
    assert "listening" not in (user.data_dir / "daemon.log").read_text()


def test_an_explicit_address_gets_a_daemon_only_with_tao_autostart(user: StartedByTao, tmp_path: Path) -> None:
    run_dir = tmp_path / "private-run"
    address = f"unix://{run_dir}/tao.sock"
    refused = tao(user, "list", TAO_HOST=address)
    assert refused.returncode == 125
    said = refused.stderr.decode()
    assert f"cannot reach the tao daemon at {address}: the service at that address is not answering" in said
    assert "`systemctl status tao-server`" in said and "`docker compose ps`" in said
    assert not run_dir.exists()  # nothing made there

    started = tao(user, "list", TAO_HOST=address, TAO_AUTOSTART="1")  # as scripts/sample runs its own
    assert started.returncode == 0, started.stderr
    assert b"tao: started tao-server" in started.stderr
    assert tao(user, "daemon", "stop", TAO_HOST=address).returncode == 0
    assert not (run_dir / "tao.sock").exists()


def test_no_daemon_is_started_in_a_directory_other_users_may_enter(user: StartedByTao, tmp_path: Path) -> None:
    shared = tmp_path / "shared-run"
    shared.mkdir()
    shared.chmod(0o755)  # as a service's /run/tao is
    refused = tao(user, "list", TAO_HOST=f"unix://{shared}/tao.sock", TAO_AUTOSTART="1")
    assert refused.returncode == 125
    assert f"tao starts no daemon there: its directory {shared} is open to other users (mode 0755)" in refused.stderr.decode()
    assert list(shared.iterdir()) == []

    user.socket.parent.mkdir(mode=0o755)  # even at the default location
    user.socket.parent.chmod(0o755)
    at_default = tao(user, "list")
    assert at_default.returncode == 125 and b"is open to other users" in at_default.stderr
    assert not user.socket.exists()
    refused_start = tao(user, "daemon", "start")
    assert refused_start.returncode == 125 and b"tao starts no daemon there" in refused_start.stderr


def test_tao_daemon_stop_leaves_a_daemon_it_did_not_start_alone(user: StartedByTao, shared_daemon: Daemon) -> None:
    refused = tao(user, "daemon", "stop", TAO_HOST=shared_daemon.address)
    assert refused.returncode == 125
    assert b"is not one tao started for you" in refused.stderr and b"systemctl stop tao-server" in refused.stderr
    assert shared_daemon.request("GET", "/healthz") == {"status": "ok"}
    status = tao(user, "daemon", "status", TAO_HOST=shared_daemon.address)
    assert status.returncode == 0 and b"stop it:   it is a service's" in status.stdout

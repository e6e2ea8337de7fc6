"""The daemon's life: restarts that adopt running containers, auto-start, manifests, TCP, light client start-up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tao_server.testing.daemon import Daemon, executable
from tests.integration.conftest import containers_gone, free_port, job_containers, job_id_of, terminate_daemon

pytestmark = pytest.mark.integration


def test_restart_resumes_a_running_job_and_records_one_that_ended_while_down(new_daemon, docker_client, gates) -> None:  # type: ignore[no-untyped-def]
    daemon = new_daemon().start()
    long_job = job_id_of(
        daemon.tao("--mounts", str(gates.mounts), "-d", "unet", "run", "sh", "-c", f"echo one; {gates.wait('long')}; echo two; exit 4")
    )
    short_job = job_id_of(
        daemon.tao("--mounts", str(gates.mounts), "-d", "unet", "run", "sh", "-c", f"echo quick; {gates.wait('short')}; echo done; exit 9")
    )
    daemon.wait_for_output(long_job, b"one")
    daemon.wait_for_output(short_job, b"quick")
    daemon.stop(signal.SIGKILL)  # no chance to clean up
    gates.open("short")  # the short job ends while no daemon watches
    [container] = job_containers(docker_client, short_job)
    assert docker_client.api.wait(container, timeout=60)["StatusCode"] == 9

    daemon.start()
    short = daemon.wait_for_status(short_job, ("failed",), timeout=30)
    assert short["exit_code"] == 9
    assert daemon.tao("logs", short_job).stdout == b"quick\ndone\n"
    gates.open("long")  # the long job ran across the restart
    followed = daemon.tao("logs", "-f", long_job)
    assert followed.returncode == 4
    assert followed.stdout == b"one\ntwo\n"  # nothing lost, nothing repeated
    assert containers_gone(docker_client, long_job) and containers_gone(docker_client, short_job)


def test_queued_jobs_survive_a_restart(new_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon = new_daemon("--max-running-jobs", "1").start()
    blocker = job_id_of(daemon.tao("-d", "ssd", "sleep", "600"))
    waiting = job_id_of(daemon.tao("-d", "ssd", "exit", "6"))
    daemon.wait_for_status(blocker, ("running",))
    assert daemon.job(waiting)["status"] == "queued"
    daemon.stop(signal.SIGTERM)
    daemon.start()
    assert daemon.job(waiting)["status"] == "queued"  # still behind the blocker, which the new daemon adopted
    assert daemon.tao("stop", blocker).returncode == 0
    assert daemon.wait_for_status(waiting, ("failed",), timeout=60)["exit_code"] == 6


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_the_daemon_cleanly_and_the_next_adopts_its_running_job(new_daemon, docker_client, gates, sig: int) -> None:  # type: ignore[no-untyped-def]
    daemon = new_daemon().start()
    job_id = job_id_of(daemon.tao("--mounts", str(gates.mounts), "-d", "unet", "run", "sh", "-c", f"echo up; {gates.wait('go')}; exit 3"))
    daemon.wait_for_output(job_id, b"up")
    process = daemon.process
    assert process is not None
    process.send_signal(sig)
    assert process.wait(timeout=60) == 0  # neither killed by the signal (-15, -2) nor failed
    assert not daemon.socket.exists()
    assert not (daemon.data_dir / "tao.db-wal").exists()  # the log folded into the database: one file to back up
    assert "Traceback" not in daemon.server_log()
    [container] = job_containers(docker_client, job_id)
    assert docker_client.api.inspect_container(container)["State"]["Running"]  # the job outlives its daemon

    daemon.start()
    assert daemon.job(job_id)["status"] == "running"  # adopted, not failed
    gates.open("go")
    followed = daemon.tao("logs", "-f", job_id)
    assert (followed.returncode, followed.stdout) == (3, b"up\n")
    assert containers_gone(docker_client, job_id)


def test_sigterm_while_tao_follows_a_job_ends_the_daemon_cleanly_and_tao_carries_on_with_the_next(new_daemon, gates) -> None:  # type: ignore[no-untyped-def]
    # `systemctl restart tao-server` while users are attached: their streams close, their jobs and `tao` go on.
    daemon = new_daemon().start()
    attached = daemon.popen_tao(
        "--mounts", str(gates.mounts), "unet", "run", "sh", "-c", f"echo before; {gates.wait('go')}; echo after; exit 5"
    )
    assert attached.stdout is not None
    assert attached.stdout.readline() == b"before\n"
    process = daemon.process
    assert process is not None
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0  # the open stream did not keep it from ending cleanly
    assert not daemon.socket.exists()
    daemon.start()
    gates.open("go")
    out, err = attached.communicate(timeout=120)
    assert attached.returncode == 5, err
    assert out == b"after\n"  # nothing lost, nothing repeated


def test_tao_starts_a_daemon_when_none_answers(tmp_path: Path, manifest_file: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    home.mkdir()
    runtime = tmp_path / "xdg-run"
    runtime.mkdir()
    data_dir = tmp_path / "data"
    env = {key: value for key, value in os.environ.items() if key not in ("TAO_HOST", "TAO_NO_AUTOSTART", "LAUNCHER_MOUNTS")}
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(runtime), TAO_DATA_DIR=str(data_dir), TAO_MANIFEST=str(manifest_file))
    try:
        result = subprocess.run(
            [executable("tao"), "detectnet_v2", "exit", "0"],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=120,
            umask=0o022,  # the usual one, under which files are readable by everyone unless made otherwise
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"exiting with 0\n"
        assert (runtime / "tao" / "tao.sock").is_socket()
        # Job arguments and output can hold keys: the data dir and the daemon's log are private from the start.
        assert (data_dir.stat().st_mode & 0o777) == 0o700
        assert ((data_dir / "daemon.log").stat().st_mode & 0o777) == 0o600
        listed = subprocess.run([executable("tao"), "list", "--all", "--json"], env=env, capture_output=True, timeout=60)
        assert [job["status"] for job in json.loads(listed.stdout)] == ["succeeded"]
    finally:
        ended = terminate_daemon(data_dir)
    assert ended, "the daemon tao started did not end within 60 s of SIGTERM"
    assert not (runtime / "tao" / "tao.sock").exists()  # it ended cleanly, and its socket went with it


def test_second_daemon_on_the_same_data_dir_is_refused(new_daemon) -> None:  # type: ignore[no-untyped-def]
    first = new_daemon().start()
    second = subprocess.run(
        [executable("tao-server"), "--data-dir", str(first.data_dir), "--socket", str(first.root / "other.sock")],
        capture_output=True,
        timeout=30,
    )
    assert second.returncode == 2
    assert f"already uses the data dir {first.data_dir}".encode() in second.stderr


def test_broken_manifest_stops_the_daemon_with_a_clear_message(tmp_path: Path) -> None:
    manifest = tmp_path / "config.json"
    manifest.write_text(
        '{"format_version": 2.0, "dockers": {"nvidia/tao/tao-toolkit": {"v1": {"docker_registry": "nvcr.io", "tasks": "detectnet_v2"}}}}'
    )
    result = subprocess.run(
        [executable("tao-server"), "--data-dir", str(tmp_path / "data"), "--socket", str(tmp_path / "s.sock"), "--manifest", str(manifest)],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert f"{manifest}: dockers.nvidia/tao/tao-toolkit.v1.tasks: expected a list of task names".encode() in result.stderr
    assert b"Traceback" not in result.stderr


def _broken(kind: str, root: Path) -> list[str]:
    """tao-server's arguments for a start that must fail at `kind`, under `root`."""
    data = root / "data"
    if kind == "group":
        return ["--socket-group", "tao-no-such-group"]
    if kind == "policy":
        (root / "policy.toml").write_text("[defaults\n")
        return ["--policy", str(root / "policy.toml")]
    if kind == "manifest":
        (root / "manifest.json").write_text('{"format_version": 2.0,}')
        return ["--manifest", str(root / "manifest.json")]
    data.mkdir(mode=0o700)
    (data / "tao.db").write_bytes(os.urandom(16384))  # "database": random bytes where the job table was
    return []


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("group", "--socket-group 'tao-no-such-group': no such group"),
        ("policy", "policy.toml"),
        ("manifest", "manifest.json: line 1, column 24: invalid JSON"),
        ("database", "tao.db cannot be used (file is not a database): restore it from a backup"),
    ],
)
def test_a_start_that_fails_says_why_in_one_line_and_leaves_no_socket(tmp_path: Path, kind: str, said: str) -> None:
    socket_path = tmp_path / "run" / "tao.sock"
    result = subprocess.run(
        [executable("tao-server"), "--data-dir", str(tmp_path / "data"), "--socket", str(socket_path), *_broken(kind, tmp_path)],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    [line] = result.stderr.decode().splitlines()  # one line, before anything says it listens
    assert line.startswith("tao-server: error: ") and said in line, line
    assert not socket_path.exists() and not socket_path.is_symlink()  # nothing a client could take for a daemon that is down


def test_a_database_the_daemon_cannot_read_stops_it_in_one_line(unprivileged_user: tuple[str, int, int]) -> None:
    import shutil
    import tempfile

    _, uid, gid = unprivileged_user
    root = Path(tempfile.mkdtemp(prefix="tao-unreadable-"))  # pytest's tmp_path is closed to other accounts
    try:
        root.chmod(0o755)
        data = root / "data"
        data.mkdir(mode=0o700)
        os.chown(data, uid, gid)
        database = data / "tao.db"
        database.write_bytes(b"")  # root's, mode 0600: the daemon's account cannot read it
        database.chmod(0o600)
        result = subprocess.run(
            ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", executable("tao-server"),
             "--data-dir", str(data), "--socket", str(data / "tao.sock")],
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        assert result.returncode == 2
        [line] = result.stderr.decode().splitlines()
        assert line == (
            f"tao-server: error: cannot read the job table {database}: Permission denied (tao-server runs as uid {uid}: "
            """give the file back to it, or restore it from a backup (the admin guide's "Upgrades and backups" says how))"""
        )
        assert not (data / "tao.sock").exists()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_grouped_manifest_takes_the_group_grammar(new_daemon, tmp_path: Path, toolkit_image: str) -> None:  # type: ignore[no-untyped-def]
    repository, tag = toolkit_image.rsplit(":", 1)
    manifest = tmp_path / "grouped.json"
    manifest.write_text(
        json.dumps(
            {
                "format_version": 3.0,
                "toolkit_version": "5.0.0",
                "task_group": {
                    "model": {"dockers": {repository: {tag: {"docker_registry": "", "tasks": ["detectnet_v2", "yolo_v4"]}}}},
                    "deploy": {"dockers": {repository: {tag: {"docker_registry": "", "tasks": ["detectnet_v2"]}}}},
                },
            }
        )
    )
    daemon = new_daemon(manifest=manifest).start()
    grouped = daemon.tao("deploy", "detectnet_v2", "exit", "2")
    assert grouped.returncode == 2
    plain = daemon.tao("yolo_v4", "argv", "x")
    assert plain.stdout == b"x\0"
    wrong = daemon.tao("deploy", "yolo_v4", "train")
    assert wrong.returncode == 125
    assert b"task group 'deploy' has no task 'yolo_v4'" in wrong.stderr
    jobs = json.loads(daemon.tao("list", "--all", "--json").stdout)
    assert {job["group"] for job in jobs} == {"deploy", "model"}
    assert b"model: detectnet_v2, yolo_v4" in daemon.tao("--help").stdout


def test_tcp_listener_serves_the_same_api(new_daemon) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    daemon = new_daemon("--host", "127.0.0.1", "--port", str(port)).start()
    url = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{url}/healthz", timeout=30).json() == {"status": "ok"}
    token = daemon.token("--user", "root", "--admin")
    result = daemon.tao("ssd", "exit", "3", env=daemon.env(TAO_HOST=url, TAO_TOKEN=token))
    assert result.returncode == 3
    assert url in json.loads(daemon.tao("info", "--json").stdout)["daemon"]["addresses"]


def test_help_and_list_do_not_import_the_server_stack(daemon: Daemon) -> None:
    probe = (
        "import sys\n"
        "from tao_client.cli.main import run\n"
        "for argv in (['--help'], ['list']):\n"
        "    assert run(argv) == 0\n"
        "heavy = sorted(m for m in ('fastapi', 'sqlmodel', 'sqlalchemy', 'docker', 'uvicorn', 'pydantic') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], env=daemon.env(), capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines()[-1] == "HEAVY []"


def test_socket_path_that_is_not_a_socket_is_left_alone(tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    result = subprocess.run(
        [executable("tao-server"), "--data-dir", str(tmp_path / "data"), "--socket", str(precious)], capture_output=True, timeout=30
    )
    assert result.returncode == 2
    assert b"exists and is not a socket" in result.stderr
    assert precious.read_text() == "keep me"


def test_tcp_beyond_loopback_needs_tls_or_insecure(tmp_path: Path) -> None:
    result = subprocess.run(
        [executable("tao-server"), "--data-dir", str(tmp_path / "data"), "--no-socket", "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert b"refusing to listen on 0.0.0.0 without TLS" in result.stderr


def test_data_dir_is_private(daemon: Daemon) -> None:
    assert daemon.tao("ssd", "exit", "0").returncode == 0
    assert (daemon.data_dir.stat().st_mode & 0o777) == 0o700
    for path in [daemon.data_dir / "tao.db", *daemon.data_dir.joinpath("logs").iterdir()]:
        assert (path.stat().st_mode & 0o077) == 0, path

"""The daemon in its container (Dockerfile, docker-compose.yml), driven by the host's `tao`.

What must stay true when the daemon runs in a container: callers are the host's users, named by
the kernel; mount sources are judged as the host sees them; restarts, `down`/`up` and upgrades
keep the table, the logs and the running jobs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from tao_server.testing.daemon import executable
from tests.integration.conftest import Gates, consecutive_ticks, job_id_of, tao_as, until, write_mounts
from tests.previous_release import previous_release_data_dir
from tests.service.composed import ComposedDaemon

HOSTILE_ARGV = ["a b", "", "$(touch /tmp/pwned)", "; rm -rf /", "'\"\\", "--", "ünïcødé", "*", "\t\n"]


def mounts_of(service: ComposedDaemon, name: str, source: Path | str) -> Path:
    path = write_mounts(service.home / f"{name}.json", {"Mounts": [{"source": str(source), "destination": "/data"}]})
    path.chmod(0o644)
    return path


def test_the_image_is_labelled_with_the_project_s_version_and_licence(server_image: str) -> None:
    inspected = json.loads(subprocess.run(["docker", "image", "inspect", server_image], capture_output=True, check=True).stdout)[0]
    labels = inspected["Config"]["Labels"]
    version = subprocess.run([executable("tao-server"), "--version"], capture_output=True, text=True, check=True).stdout.split()[-1]
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert inspected["Config"]["Entrypoint"] == ["dumb-init", "--", "tao-server"]
    assert inspected["Config"]["Healthcheck"]["Test"] == ["CMD", "tao-server", "healthcheck"]


def test_the_sample_runs_end_to_end_from_the_host_tao_argv_byte_for_byte(service: ComposedDaemon) -> None:
    ran = service.tao("detectnet_v2", "argv", *HOSTILE_ARGV)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == b"".join(arg.encode() + b"\0" for arg in HOSTILE_ARGV)  # the sample prints each argument NUL-ended
    assert service.tao("detectnet_v2", "exit", "3").returncode == 3
    missing = service.tao("missing", "train")
    assert missing.returncode == 127, missing.stderr


def test_the_host_s_users_are_named_by_the_kernel_and_their_jobs_run_as_them(service: ComposedDaemon, alice: Any) -> None:
    _, uid, gid = alice
    ran = tao_as(service, alice, "detectnet_v2", "id")
    assert ran.returncode == 0, ran.stderr
    assert f"uid={uid} gid={gid}".encode() in ran.stdout


def test_a_second_account_sees_none_of_the_first_account_s_jobs(service: ComposedDaemon, alice: Any, bob: Any) -> None:
    started = tao_as(service, alice, "-d", "unet", "run", "sh", "-c", "echo alice was here; sleep 600")
    assert started.returncode == 0, started.stderr
    alices = job_id_of(started)
    try:
        service.wait_for_output(alices, b"alice was here")
        assert json.loads(tao_as(service, bob, "list", "--all", "--json").stdout) == []
        for verb in (["logs", alices], ["stop", alices]):
            refused = tao_as(service, bob, *verb)
            assert refused.returncode != 0
            assert f"no job '{alices}'".encode() in refused.stderr
        assert [job["id"] for job in json.loads(tao_as(service, alice, "list", "--json").stdout)] == [alices]
    finally:
        assert tao_as(service, alice, "stop", alices).returncode == 0


def test_an_account_cannot_mount_what_it_cannot_read_on_the_host(service: ComposedDaemon, alice: Any) -> None:
    closed = service.tree / "roots-only"
    (closed / "data").mkdir(parents=True, exist_ok=True)
    closed.chmod(0o700)
    refused = tao_as(service, alice, "--mounts", str(mounts_of(service, "closed", closed / "data")), "detectnet_v2", "argv", "x")
    assert refused.returncode == 125
    assert b"is not readable by uid" in refused.stderr

    opened = service.tree / "everyone" / "data"
    opened.mkdir(parents=True, exist_ok=True)
    (opened / "hello.txt").write_text("from the host\n")
    for path in (opened.parent, opened, opened / "hello.txt"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    ran = tao_as(service, alice, "--mounts", str(mounts_of(service, "open", opened)), "unet", "run", "cat", "/data/hello.txt")
    assert (ran.returncode, ran.stdout) == (0, b"from the host\n"), ran.stderr


def test_a_source_that_exists_only_inside_the_daemon_s_container_is_refused(service: ComposedDaemon) -> None:
    assert service.in_container("test", "-d", "/opt/tao-server").returncode == 0  # there, in the daemon's container
    assert not Path("/opt/tao-server").exists()
    for source in ("/opt/tao-server", "/var/lib/tao"):
        refused = service.tao("--mounts", str(mounts_of(service, "inside", source)), "detectnet_v2", "argv", "x")
        assert refused.returncode == 125
        assert b"is outside the host paths the daemon's container sees" in refused.stderr


def test_the_host_s_etc_stays_protected_even_through_a_link_in_a_host_tree(service: ComposedDaemon, alice: Any) -> None:
    link = service.tree / "innocent"
    if not link.is_symlink():
        link.symlink_to("/etc")
    for caller in (None, alice):
        mounts = str(mounts_of(service, "etc", link))
        refused = (
            service.tao("--mounts", mounts, "detectnet_v2", "argv", "x")
            if caller is None
            else tao_as(service, caller, "--mounts", mounts, "detectnet_v2", "argv", "x")
        )
        assert refused.returncode == 125
        assert b"(resolves to /etc)" in refused.stderr


def test_a_restart_of_the_daemon_s_container_keeps_a_running_job_s_output_whole_and_its_exit_code(service: ComposedDaemon) -> None:
    gates = Gates(service.tree / "gates")
    for path in (gates.root, gates.mounts):
        path.chmod(0o755)
    job_id = job_id_of(
        service.tao("--mounts", str(gates.mounts), "-d", "unet", "run", "sh", "-c", f"echo before; {gates.wait('go')}; echo after; exit 7")
    )
    service.wait_for_output(job_id, b"before")
    follower = service.popen_tao("logs", "-f", job_id)

    service.restart()
    assert service.job(job_id)["status"] == "running"  # adopted by the new process, not failed
    gates.open("go")
    out, err = follower.communicate(timeout=120)
    assert (follower.returncode, out) == (7, b"before\nafter\n"), err
    final = service.job(job_id)
    assert (final["status"], final["exit_code"]) == ("failed", 7)


def test_ticks_printed_across_a_restart_are_each_logged_once_in_order(service: ComposedDaemon) -> None:
    job_id = job_id_of(service.tao("-d", "unet", "ticks", "100000", "0.01"))
    service.wait_for_output(job_id, b"tick 20\n")
    service.restart()
    service.wait_for_output(job_id, b"tick 2000\n")
    assert service.tao("stop", job_id).returncode == 0
    with service.http() as client:
        consecutive_ticks(client.get(f"/v1/jobs/{job_id}/logs").content)


def test_down_and_up_keep_the_job_table_and_the_logs(composed: Any) -> None:
    service = composed().start()
    job_id = job_id_of(service.tao("-d", "detectnet_v2", "argv", "kept", "across"))
    service.wait_for_status(job_id, ("succeeded",))
    service.down()
    assert not service.socket.exists()  # the daemon removed its socket on the way out
    service.start()
    assert service.job(job_id)["status"] == "succeeded"
    assert service.tao("logs", job_id).stdout == b"kept\0across\0"


def test_the_daemon_ends_cleanly_on_the_engine_s_stop_signal(composed: Any) -> None:
    service = composed().start()
    container = service.container()
    subprocess.run(["docker", "kill", "--signal", str(int(signal.SIGTERM)), container], check=True, capture_output=True)
    waited = subprocess.run(["docker", "wait", container], capture_output=True, text=True, timeout=60)
    assert waited.stdout.strip() == "0"
    assert not service.socket.exists()
    assert "Traceback" not in service.server_log()


def test_the_previous_release_s_database_is_upgraded_in_the_data_volume(composed: Any, tmp_path: Path) -> None:
    release = previous_release_data_dir(tmp_path / "data")
    service = composed()
    service.fill_data_volume(release.data_dir)
    service.start()  # migrations run before the socket answers, so healthy means upgraded
    listed = {job["id"]: job for job in json.loads(service.tao("list", "--all", "--json").stdout)}
    assert sorted(listed) == sorted(job.id for job in release.jobs)
    for job in release.jobs:
        assert {key: listed[job.id][key] for key in job.fields} == job.fields
        assert service.tao("logs", job.id).stdout == job.log
    revision = service.in_container(
        "python3",
        "-c",
        "import sqlite3; print(sqlite3.connect('/var/lib/tao/tao.db').execute('select version_num from alembic_version').fetchone()[0])",
    )
    head = sorted(p.name for p in (Path(__file__).parents[2] / "migrations" / "versions").glob("0*.py"))[-1].split("_")[0]
    assert revision.stdout.strip() == head
    ran = service.tao("detectnet_v2", "argv", "after", "the", "upgrade")
    assert (ran.returncode, ran.stdout) == (0, b"after\0the\0upgrade\0")


def test_root_s_tao_never_takes_the_socket_of_a_service_that_is_down(composed: Any) -> None:
    service = composed().start()
    service.stop()  # the service is down (restarting, or not yet listening): its socket directory stays
    assert not service.socket.exists()
    env = {key: value for key, value in os.environ.items() if key not in ("TAO_NO_AUTOSTART", "LAUNCHER_MOUNTS")}
    env.update(HOME=str(service.home), TAO_HOST=service.address)
    for extra in ({}, {"TAO_AUTOSTART": "1"}):  # not even when asked to start one: the directory is the service's
        ran = subprocess.run([executable("tao"), "list"], env={**env, **extra}, capture_output=True, timeout=120)
        assert ran.returncode == 125
        said = ran.stderr.decode()
        assert f"cannot reach the tao daemon at {service.address}: the service at that address is not answering" in said
        assert "`systemctl status tao-server`" in said and "`docker compose ps`" in said
        assert not service.socket.exists()  # nothing listens there afterwards
    service.start()  # and the service starts again cleanly, on its own socket
    assert service.tao("detectnet_v2", "exit", "0").returncode == 0


def test_a_service_that_cannot_start_leaves_no_socket_behind(composed: Any) -> None:
    service = composed(env={"TAO_SOCKET_GROUP": "tao-no-such-group"})
    service.compose("up", "-d")
    container = service.container()

    def failed_once() -> bool:  # the engine restarts it after each failed start (restart: unless-stopped)
        inspected = subprocess.run(["docker", "inspect", "--format", "{{.RestartCount}}", container], capture_output=True, text=True)
        return int(inspected.stdout.strip() or 0) >= 1

    until(failed_once, "the service's start failed")
    assert "--socket-group 'tao-no-such-group': no such group" in service.server_log()
    assert not service.socket.exists()  # a client finds nothing it could take for a daemon that is down
    service.compose("stop", check=False)

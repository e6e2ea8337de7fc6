"""Ctrl-C and SIGTERM cancel the job and leave nothing running; a vanished client does not."""

from __future__ import annotations

import signal
import time

import pytest

from tao_server.testing.daemon import Daemon
from tests.integration.conftest import job_containers

pytestmark = pytest.mark.integration


def _start_sleeping_job(daemon: Daemon, seconds: str = "60"):  # type: ignore[no-untyped-def]
    process = daemon.popen_tao("detectnet_v2", "sleep", seconds)
    assert process.stdout is not None
    assert process.stdout.readline() == f"sleeping {seconds}\n".encode()
    with daemon.http() as client:
        running = client.get("/v1/jobs", params={"status": "running"}).json()["jobs"]
    job = next(job for job in running if job["args"] == [seconds])
    return process, job


@pytest.mark.parametrize(("sig", "expected"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_cancels_the_job_and_removes_its_container(daemon: Daemon, docker_client, sig: int, expected: int) -> None:
    process, job = _start_sleeping_job(daemon, seconds=str(600 + expected))
    started = time.monotonic()
    process.send_signal(sig)
    out, err = process.communicate(timeout=60)
    elapsed = time.monotonic() - started
    assert process.returncode == expected
    assert b"got SIGTERM" in out  # the task saw SIGTERM and could clean up
    assert f"stopping job {job['id']}".encode() in err
    assert job_containers(docker_client, job["id"]) == []
    final = daemon.job(job["id"])
    assert final["status"] == "cancelled"
    # The task answers SIGTERM at once: a client that waited out the stop timeout, or the task's
    # sleep, would take far longer than this bound, which only a very loaded machine nears.
    assert elapsed < 60, f"cancel took {elapsed:.1f}s"


def test_a_killed_client_leaves_the_job_running_and_logs_follow_reattaches(daemon: Daemon, gates) -> None:  # type: ignore[no-untyped-def]
    process = daemon.popen_tao("--mounts", str(gates.mounts), "unet", "run", "sh", "-c", f"echo waiting; {gates.wait('go')}; echo went")
    assert process.stdout is not None
    assert process.stdout.readline() == b"waiting\n"
    process.kill()  # no signal handler runs: like a dropped SSH session
    process.wait()
    with daemon.http() as client:
        [job] = [j for j in client.get("/v1/jobs", params={"status": "running"}).json()["jobs"] if "/gates/go" in j["args"][-1]]
    assert job["status"] == "running"
    follower = daemon.popen_tao("logs", "-f", job["id"])
    assert follower.stdout is not None
    assert follower.stdout.readline() == b"waiting\n"
    gates.open("go")
    out, _ = follower.communicate(timeout=60)
    assert follower.returncode == 0
    assert out == b"went\n"
    assert daemon.job(job["id"])["status"] == "succeeded"


def test_ctrl_c_while_following_logs_detaches_without_cancelling(daemon: Daemon) -> None:
    job_id = daemon.tao("-d", "ssd", "sleep", "30").stdout.decode().strip()
    daemon.wait_for_output(job_id, b"sleeping 30")
    follower = daemon.popen_tao("logs", "-f", job_id)
    assert follower.stdout is not None
    assert follower.stdout.readline() == b"sleeping 30\n"
    follower.send_signal(signal.SIGINT)
    assert follower.wait(timeout=60) == 130
    assert daemon.job(job_id)["status"] == "running"
    daemon.tao("stop", job_id)


def test_task_that_ignores_sigterm_is_killed_after_the_stop_timeout(daemon: Daemon, docker_client) -> None:
    job_id = daemon.tao("-d", "unet", "run", "sh", "-c", "trap '' TERM; echo ready; while true; do sleep 1; done").stdout.decode().strip()
    daemon.wait_for_output(job_id, b"ready")
    started = time.monotonic()
    assert daemon.tao("stop", job_id).returncode == 0
    elapsed = time.monotonic() - started
    final = daemon.job(job_id)
    assert final["status"] == "cancelled"
    assert final["exit_code"] == 137
    assert 4 <= elapsed < 60  # the fixture daemon's --stop-timeout is 5 s: never sooner
    assert job_containers(docker_client, job_id) == []


def test_tao_rides_out_a_daemon_restart(new_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon = new_daemon().start()
    process = daemon.popen_tao("unet", "run", "sh", "-c", "echo before; sleep 3; echo after; exit 5")
    assert process.stdout is not None
    assert process.stdout.readline() == b"before\n"
    daemon.stop(signal.SIGKILL)
    daemon.start()  # adopts the running container and resumes its log
    out, err = process.communicate(timeout=60)
    assert process.returncode == 5, err
    assert out == b"after\n"


def test_a_task_that_exits_0_on_sigterm_still_reads_as_cancelled(daemon: Daemon) -> None:
    job_id = (
        daemon.tao("-d", "unet", "run", "sh", "-c", "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done")
        .stdout.decode()
        .strip()
    )
    daemon.wait_for_output(job_id, b"ready")
    follower = daemon.popen_tao("logs", "-f", job_id)
    assert daemon.tao("stop", job_id).returncode == 0
    assert follower.wait(timeout=30) == 143
    assert daemon.job(job_id)["status"] == "cancelled"


def test_a_cancel_survives_a_daemon_crash(new_daemon, docker_client) -> None:  # type: ignore[no-untyped-def]
    daemon = new_daemon().start()
    job_id = daemon.tao("-d", "unet", "run", "sh", "-c", "trap '' TERM; echo ready; while true; do sleep 1; done").stdout.decode().strip()
    daemon.wait_for_output(job_id, b"ready")
    with daemon.http() as client:
        assert client.post(f"/v1/jobs/{job_id}/cancel").json()["cancel_requested"] is True
    daemon.stop(signal.SIGKILL)  # before the stop timeout runs out
    daemon.start()
    final = daemon.wait_for_status(job_id, ("cancelled",), timeout=30)
    assert final["status"] == "cancelled"
    assert job_containers(docker_client, job_id) == []

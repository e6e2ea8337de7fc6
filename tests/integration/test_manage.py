"""`tao list`, `tao stop`, `tao info` and `tao logs`."""

from __future__ import annotations

import json
import re

import pytest

from tao_server.testing.daemon import Daemon
from tests.conftest import IMAGE
from tests.integration.conftest import job_containers, job_id_of

pytestmark = pytest.mark.integration


def test_list_shows_active_jobs_and_all_adds_finished(daemon: Daemon) -> None:
    finished = job_id_of(daemon.tao("-d", "ssd", "exit", "0"))
    daemon.wait_for_status(finished, ("succeeded",))
    running = job_id_of(daemon.tao("-d", "ssd", "sleep", "30"))
    daemon.wait_for_status(running, ("running",))

    active = daemon.tao("list").stdout.decode()
    assert active.splitlines()[0].split() == ["JOB", "ID", "TASK", "STATUS", "EXIT", "CREATED", "CONTAINER"]
    assert running in active and finished not in active

    everything = daemon.tao("list", "--all").stdout.decode()
    assert running in everything and finished in everything

    listed = json.loads(daemon.tao("list", "--all", "--json").stdout)
    by_id = {job["id"]: job for job in listed}
    assert by_id[finished]["status"] == "succeeded" and by_id[finished]["exit_code"] == 0
    assert by_id[running]["status"] == "running"
    assert by_id[running]["command"] == ["ssd", "sleep", "30"]
    daemon.tao("stop", running)


def test_stop_by_job_id_waits_until_the_container_is_gone(daemon: Daemon, docker_client) -> None:
    job_id = job_id_of(daemon.tao("-d", "unet", "sleep", "60"))
    daemon.wait_for_output(job_id, b"sleeping 60")
    result = daemon.tao("stop", job_id)
    assert result.returncode == 0
    assert result.stdout == f"{job_id}: cancelled\n".encode()
    assert job_containers(docker_client, job_id) == []


def test_stop_by_container_id_as_the_seed_does(daemon: Daemon, docker_client) -> None:
    job_id = job_id_of(daemon.tao("-d", "unet", "sleep", "60"))
    container_id = daemon.wait_for_status(job_id, ("running",))["container_id"]
    result = daemon.tao("stop", "--container_id", container_id[:12])
    assert result.returncode == 0, result.stderr
    assert daemon.job(job_id)["status"] == "cancelled"
    assert job_containers(docker_client, job_id) == []


def test_stop_all_stops_every_active_job(daemon: Daemon, docker_client) -> None:
    ids = [job_id_of(daemon.tao("-d", "fpenet", "sleep", "60")) for _ in range(3)]
    for job_id in ids:
        daemon.wait_for_status(job_id, ("running",))
    result = daemon.tao("stop", "--all")
    assert result.returncode == 0
    for job_id in ids:
        assert daemon.job(job_id)["status"] == "cancelled"
        assert job_containers(docker_client, job_id) == []
    assert daemon.tao("list").stdout.decode().splitlines()[1:] == []


def test_stop_unknown_job_is_a_launcher_error_and_the_others_still_stop(daemon: Daemon, docker_client) -> None:
    job_id = job_id_of(daemon.tao("-d", "unet", "sleep", "60"))
    daemon.wait_for_status(job_id, ("running",))
    result = daemon.tao("stop", "nosuchjob", job_id)
    assert result.returncode == 125  # as `tao logs nosuchjob`: the launcher failed, as docker run says it
    assert b"no job 'nosuchjob'" in result.stderr
    assert result.stdout == f"{job_id}: cancelled\n".encode()
    assert job_containers(docker_client, job_id) == []


def test_info_names_daemon_manifest_engine_and_gpus(daemon: Daemon, docker_client) -> None:
    text = daemon.tao("info").stdout.decode()
    assert f"daemon:    {daemon.address}" in text
    assert f"manifest:  {daemon.manifest} (format 2.0, toolkit test)" in text
    assert f"engine:    Docker {docker_client.version()['Version']}" in text
    assert "gpus:      none" in text
    assert IMAGE in text

    info = json.loads(daemon.tao("info", "--verbose", "--json").stdout)
    # Beside its socket, the daemon's own listener for the dashboard, on loopback at a free port.
    [socket_address, dashboard] = info["daemon"]["addresses"]
    assert socket_address == daemon.address and re.fullmatch(r"http://127\.0\.0\.1:\d+", dashboard)
    assert info["daemon"]["dashboard"] == f"{dashboard}/ui/" and f"dashboard: {dashboard}/ui/ (`tao ui` signs you in)" in text
    assert info["images"][0]["reference"] == IMAGE
    assert info["images"][0]["local"]["id"].startswith("sha256:")
    assert "detectnet_v2" in info["images"][0]["tasks"]


def test_logs_of_a_finished_job_replay_its_output(daemon: Daemon) -> None:
    job_id = job_id_of(daemon.tao("-d", "ssd", "train"))
    daemon.wait_for_status(job_id, ("succeeded",))
    logs = daemon.tao("logs", job_id)
    assert logs.returncode == 0
    assert logs.stdout.decode().splitlines()[-1] == "training finished"


def test_logs_of_an_unknown_job_is_a_clear_error(daemon: Daemon) -> None:
    result = daemon.tao("logs", "nosuchjob")
    assert result.returncode == 125
    assert b"no job 'nosuchjob'" in result.stderr


@pytest.mark.parametrize("prefix", ["", " "])
def test_stop_with_an_empty_container_id_stops_nothing(daemon: Daemon, prefix: str) -> None:
    job_id = job_id_of(daemon.tao("-d", "unet", "sleep", "60"))
    daemon.wait_for_status(job_id, ("running",))
    result = daemon.tao("stop", "--container_id", prefix)
    assert result.returncode == 125
    assert b"matches no job" in result.stderr
    assert daemon.job(job_id)["status"] == "running"
    daemon.tao("stop", job_id)


def test_usage_mistakes_exit_125(daemon: Daemon) -> None:
    result = daemon.tao("list", "--bogus")
    assert result.returncode == 125
    assert b"unrecognized arguments: --bogus" in result.stderr

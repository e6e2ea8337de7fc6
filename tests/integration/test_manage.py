"""`tao list`, `tao stop`, `tao info`, `tao show` and `tao logs`, and how each ends when its reader goes away."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tao_server.testing.daemon import Daemon, executable
from tests.conftest import IMAGE
from tests.integration.conftest import job_containers, job_id_of, until, write_mounts

pytestmark = pytest.mark.integration


def test_list_shows_active_jobs_and_all_adds_finished(daemon: Daemon) -> None:
    finished = job_id_of(daemon.tao("-d", "ssd", "exit", "0"))
    daemon.wait_for_status(finished, ("succeeded",))
    running = job_id_of(daemon.tao("-d", "ssd", "sleep", "30"))
    daemon.wait_for_status(running, ("running",))

    active = daemon.tao("list").stdout.decode()
    assert active.splitlines()[0].split() == ["JOB", "ID", "TASK", "STATUS", "EXIT", "CREATED", "DURATION", "CONTAINER", "COMMAND"]
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


def test_list_tells_jobs_apart_by_command_and_duration_newest_first(daemon: Daemon) -> None:
    ids = [job_id_of(daemon.tao("-d", "detectnet_v2", "argv", "-e", f"/workspace/specs/{name}.txt")) for name in ("first", "second")]
    for job_id in ids:
        daemon.wait_for_status(job_id, ("succeeded",))
    lines = daemon.tao("list", "--all").stdout.decode().splitlines()
    rows = {line.split()[0]: line for line in lines[1:]}
    assert [line.split()[0] for line in lines[1:3]] == ids[::-1]  # newest first
    for job_id, name in zip(ids, ("first", "second"), strict=True):
        assert rows[job_id].endswith(f"argv -e /workspace/specs/{name}.txt")  # not on a terminal: whole
        assert re.search(r"  \d+:\d\d  ", rows[job_id]), rows[job_id]  # how long it ran
    newest = json.loads(daemon.tao("list", "--all", "--json", "-n", "1").stdout)
    assert [job["id"] for job in newest] == [ids[1]]


def test_show_explains_a_job_and_masks_its_secrets(daemon: Daemon, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = {"Envs": [{"variable": "NGC_API_KEY", "value": "nvapi-secret"}, {"variable": "CUDA_DEVICE_ORDER", "value": "PCI_BUS_ID"}]}
    mounts = write_mounts(tmp_path / "mounts.json", config)
    job_id = job_id_of(daemon.tao("--mounts", str(mounts), "-d", "detectnet_v2", "exit", "3"))
    daemon.wait_for_status(job_id, ("failed",))
    _until_image_recorded(daemon, job_id)
    text = daemon.tao("show", job_id).stdout.decode()
    assert f"job:       {job_id}\n" in text and "status:    failed (exit code 3)\n" in text
    assert "command:   tao detectnet_v2 exit 3\n" in text
    assert f"image:     {IMAGE}\n" in text and re.search(r"digest:    sha256:[0-9a-f]{64}", text)
    assert "envs:      NGC_API_KEY=****\n           CUDA_DEVICE_ORDER=PCI_BUS_ID\n" in text
    assert "options:   shm_size=64 MiB" in text and re.search(r"\n  \d\d:\d\d:\d\d  image ", text)
    assert text.endswith("output (last 20 lines):\n  exiting with 3\n")
    assert "nvapi-secret" not in text

    shown = json.loads(daemon.tao("show", "--json", job_id).stdout)
    assert shown["job"]["envs"] == {"NGC_API_KEY": "****", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert shown["job"]["exit_code"] == 3 and shown["output_tail"] == "exiting with 3\n"
    assert [event["type"] for event in shown["events"]] == ["image"]


def test_show_of_an_unknown_job_is_a_clear_error(daemon: Daemon) -> None:
    result = daemon.tao("show", "nosuchjob")
    assert (result.returncode, result.stdout) == (125, b"")
    assert b"no job 'nosuchjob'" in result.stderr


def test_logs_of_a_job_that_ended_without_output_say_why_and_exit_with_its_code(daemon: Daemon) -> None:
    failed = job_id_of(daemon.tao("-d", "unet", "run", "sh", "-c", "exit 3"))
    daemon.wait_for_status(failed, ("failed",))
    logs = daemon.tao("logs", failed)
    assert (logs.returncode, logs.stdout) == (3, b"")
    assert logs.stderr == f"tao: job {failed} failed with exit code 3 and printed nothing\n".encode()

    never_ran = job_id_of(daemon.tao("-d", "missing", "train"))
    error = daemon.wait_for_status(never_ran, ("error",))
    logs = daemon.tao("logs", never_ran)  # its output is the init's word on the exec that failed
    assert logs.returncode == 127
    assert logs.stderr == f"tao: error: {error['error']}\n".encode()


def test_logs_of_a_failed_job_with_output_exit_with_its_code(daemon: Daemon) -> None:
    job_id = job_id_of(daemon.tao("-d", "ssd", "exit", "4"))
    daemon.wait_for_status(job_id, ("failed",))
    logs = daemon.tao("logs", job_id)
    assert (logs.returncode, logs.stdout, logs.stderr) == (4, b"exiting with 4\n", b"")


@pytest.mark.parametrize(
    "command",
    ["tao list --all | head -1", "tao list --all --json | head -1", "tao logs {job} | head -1", "tao show -n 5000 {job} | head -1"],
)
def test_a_reader_that_goes_away_ends_tao_quietly(daemon: Daemon, command: str) -> None:
    """More than a pipe holds (64 KiB) is left to write when `head` goes: `tao` ends as tools killed by SIGPIPE do.

    (Output that fits in the pipe once `head` has its lines ends as with any tool: 0, having written it all.)
    """
    job_id = job_id_of(daemon.tao("-d", "detectnet_v2", "argv", "x" * 100_000))  # a long command line: a long `tao list`
    daemon.wait_for_status(job_id, ("succeeded",))
    lines = job_id_of(daemon.tao("-d", "detectnet_v2", "lines", "5000"))  # 270 kB of output
    daemon.wait_for_status(lines, ("succeeded",))
    piped = subprocess.run(
        ["bash", "-c", command.format(job=lines) + '; echo "${PIPESTATUS[0]}" >&2'],
        env=daemon.env(PATH=f"{Path(executable('tao')).parent}:{os.environ['PATH']}"),
        capture_output=True,
        timeout=120,
    )
    assert piped.stdout.strip(), "head printed nothing"
    assert piped.stderr == b"141\n", piped.stderr.decode()[-2000:]  # no traceback, the status of a tool killed by SIGPIPE


def _until_image_recorded(daemon: Daemon, job_id: str) -> None:
    """The job's `image` event is recorded beside its run; wait for it rather than bet on when."""
    until(
        lambda: any(event["type"] == "image" for event in daemon.request("GET", f"/v1/jobs/{job_id}/events")["events"]), "the image event"
    )

"""`tao <task> <subtask> args...` end to end: arguments, output, exit codes."""

from __future__ import annotations

import os

import pytest

from tao_server.testing.daemon import Daemon
from tests.integration.conftest import job_containers, job_id_of, until

pytestmark = pytest.mark.integration

HOSTILE_ARGS = [
    "with spaces",
    "'single quoted'",
    '"double quoted"',
    "$HOME",
    "${PATH}",
    "$(id)",
    "`id`",
    "; rm -rf /",
    "a && b || c",
    "*",
    "/etc/*",
    "line one\nline two",
    "tab\there",
    "naïve ☃ 日本語",
    "",
    "--help",
    "-e",
    "back\\slash",
    "trailing space ",
    "> /tmp/redirect",
]


def test_arguments_reach_the_task_byte_for_byte(daemon: Daemon) -> None:
    result = daemon.tao("detectnet_v2", "argv", *HOSTILE_ARGS)
    assert result.returncode == 0, result.stderr
    expected = b"".join(arg.encode() + b"\0" for arg in HOSTILE_ARGS)
    assert result.stdout == expected


def test_an_argument_that_is_not_utf8_is_refused_naming_it_and_nothing_is_submitted(new_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon = new_daemon().start()
    not_utf8 = os.fsdecode(b"caf\xe9.jpg")  # as Python decodes it from argv: a lone surrogate for the byte 0xe9
    result = daemon.tao("-d", "detectnet_v2", "run", "echo", not_utf8)
    assert result.returncode == 125
    assert b"tao: error: argument 5 'caf\\xe9.jpg' is not valid UTF-8" in result.stderr, result.stderr
    job_id = daemon.tao("--id", not_utf8, "detectnet_v2", "exit", "0")
    assert job_id.returncode == 125
    assert b"tao: error: --id 'caf\\xe9.jpg' is not valid UTF-8" in job_id.stderr, job_id.stderr
    assert daemon.tao("list", "--all", "--json").stdout == b"[]\n"  # nothing was submitted


def test_sample_training_run_streams_output_and_succeeds(daemon: Daemon) -> None:
    result = daemon.tao("detectnet_v2", "train", "-e", "/etc/passwd", "-r", "/tmp/results")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "detectnet_v2 train: spec=/etc/passwd results=/tmp/results"
    assert [line for line in lines if line.startswith("Epoch")] == [
        "Epoch 1/3 - loss: 0.71",
        "Epoch 2/3 - loss: 0.52",
        "Epoch 3/3 - loss: 0.33",
    ]
    assert lines[-1] == "training finished"


@pytest.mark.parametrize("code", [0, 1, 3, 42])
def test_exit_code_is_the_tasks_own(daemon: Daemon, code: int) -> None:
    result = daemon.tao("yolo_v4", "exit", str(code))
    assert result.returncode == code
    assert result.stdout == f"exiting with {code}\n".encode()


def test_missing_entrypoint_exits_127_with_a_message(daemon: Daemon) -> None:
    result = daemon.tao("missing", "train")
    assert result.returncode == 127
    assert b"entrypoint 'missing' does not exist in the image" in result.stderr


def test_entrypoint_that_cannot_execute_exits_126(daemon: Daemon) -> None:
    result = daemon.tao("not_executable", "train")
    assert result.returncode == 126
    assert b"cannot be executed" in result.stderr


def test_stderr_of_the_task_is_shown(daemon: Daemon) -> None:
    result = daemon.tao("ssd", "stderr")
    assert result.returncode == 0
    assert b"to stdout\n" in result.stdout and b"to stderr\n" in result.stdout


def test_unknown_task_is_a_launcher_error_naming_the_closest_tasks(daemon: Daemon) -> None:
    result = daemon.tao("detectnet_v3", "train")
    assert result.returncode == 125
    assert result.stderr == b"tao: error: unknown task 'detectnet_v3'; did you mean detectnet_v2?\n"


def test_a_mistyped_verb_is_a_launcher_error_naming_the_verb(daemon: Daemon) -> None:
    result = daemon.tao("lst")
    assert (result.returncode, result.stderr) == (125, b"tao: error: unknown command or task 'lst'; did you mean `tao list`?\n")
    nothing_close = daemon.tao("xyzzy", "train")
    assert nothing_close.returncode == 125
    assert nothing_close.stderr == b"tao: error: unknown command or task 'xyzzy'; `tao --help` lists the commands and the daemon's tasks\n"


def test_the_daemon_names_the_closest_task_to_any_client(daemon: Daemon) -> None:
    with daemon.http() as client:
        answer = client.post("/v1/jobs", json={"task": "detectnet_v3", "subtask": "train"})
    assert answer.status_code == 422
    assert answer.json()["error"]["message"].startswith("unknown task 'detectnet_v3'; did you mean detectnet_v2? known tasks: ")


def test_run_executes_a_command_in_the_tasks_image(daemon: Daemon) -> None:
    result = daemon.tao("unet", "run", "echo", "hello from run")
    assert result.returncode == 0
    assert result.stdout == b"hello from run\n"


def test_detach_prints_the_job_id_and_logs_follow_reattaches(daemon: Daemon) -> None:
    detached = daemon.tao("--detach", "classification", "exit", "5")
    assert detached.returncode == 0, detached.stderr
    job_id = job_id_of(detached)
    followed = daemon.tao("logs", "-f", job_id)
    assert followed.returncode == 5
    assert followed.stdout == b"exiting with 5\n"
    assert daemon.tao("logs", job_id).stdout == b"exiting with 5\n"


def test_task_help_lists_subtasks_from_the_manifest(daemon: Daemon) -> None:
    result = daemon.tao("detectnet_v2", "--help")
    assert result.returncode == 0
    assert b"subtasks: argv, exit, train" in result.stdout


def test_task_help_without_known_subtasks_runs_the_tasks_own_help(daemon: Daemon) -> None:
    result = daemon.tao("fpenet", "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(b"usage: fpenet {train,")


def test_subtask_help_reaches_the_task(daemon: Daemon) -> None:
    result = daemon.tao("detectnet_v2", "argv", "--help")
    assert result.stdout == b"--help\0"


def test_top_level_help_lists_every_task(daemon: Daemon) -> None:
    result = daemon.tao("--help")
    assert result.returncode == 0
    for task in ("detectnet_v2", "speech_to_text", "yolo_v4_tiny", "token_classification"):
        assert task.encode() in result.stdout
    for command in (b"list", b"stop", b"info", b"logs"):
        assert command in result.stdout


def test_a_gpu_job_on_a_host_without_gpus_fails_clearly(daemon: Daemon) -> None:
    result = daemon.tao("--gpus", "all", "detectnet_v2", "exit", "0")
    assert result.returncode == 125
    assert b"the daemon's host has none" in result.stderr


def test_jobs_without_a_gpu_request_get_no_device_request(daemon: Daemon, docker_client) -> None:
    job_id = job_id_of(daemon.tao("-d", "detectnet_v2", "sleep", "30"))
    job = daemon.wait_for_status(job_id, ("running",))
    container = docker_client.containers.get(job["container_id"])
    assert not container.attrs["HostConfig"].get("DeviceRequests")
    daemon.tao("stop", job_id)


def test_unreachable_daemon_is_exit_125_naming_the_address(daemon: Daemon) -> None:
    env = daemon.env(TAO_HOST="http://127.0.0.1:9")
    result = daemon.tao("list", env=env)
    assert result.returncode == 125
    assert b"cannot reach the tao daemon at http://127.0.0.1:9" in result.stderr

    missing_socket = daemon.env(TAO_HOST=f"unix://{daemon.root}/nothing.sock")
    result = daemon.tao("detectnet_v2", "exit", "0", env=missing_socket)
    assert result.returncode == 125
    assert f"cannot reach the tao daemon at unix://{daemon.root}/nothing.sock".encode() in result.stderr


def test_two_jobs_run_at_once(daemon: Daemon) -> None:
    first = job_id_of(daemon.tao("-d", "ssd", "sleep", "30"))
    second = job_id_of(daemon.tao("-d", "dssd", "sleep", "30"))
    assert daemon.wait_for_status(first, ("running",))["status"] == "running"
    assert daemon.wait_for_status(second, ("running",))["status"] == "running"
    stopped = daemon.tao("stop", first, second)
    assert stopped.returncode == 0
    assert daemon.job(first)["status"] == daemon.job(second)["status"] == "cancelled"


def test_a_container_removed_behind_the_daemons_back_ends_the_job_as_no_success(daemon: Daemon, docker_client) -> None:  # type: ignore[no-untyped-def]
    before = set(_jobs_of(daemon))  # the module's daemon has run other jobs
    running = daemon.popen_tao("unet", "run", "sh", "-c", "echo up; sleep 600")
    until(lambda: set(_jobs_of(daemon)) - before != set(), "the job is submitted")
    [job_id] = set(_jobs_of(daemon)) - before
    daemon.wait_for_output(job_id, b"up\n")
    [container] = job_containers(docker_client, job_id)
    docker_client.containers.get(container).remove(force=True)  # someone's `docker rm -f`
    _, err = running.communicate(timeout=120)
    ended = daemon.job(job_id)
    if ended["status"] == "cancelled":  # the usual case: the container was gone when the daemon looked
        assert running.returncode == 143
        assert f"was cancelled: its container {container[:12]} was removed outside the launcher".encode() in err
    else:  # the engine recorded the kill before the removal: the kill's own code
        assert (ended["status"], ended["exit_code"], running.returncode) == ("failed", 137, 137)


def _jobs_of(daemon: Daemon) -> list[str]:
    with daemon.http() as client:
        return [job["id"] for job in client.get("/v1/jobs").json()["jobs"]]

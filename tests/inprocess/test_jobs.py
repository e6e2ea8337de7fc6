"""/v1/jobs in process: the job state machine, the service's rules and every route's answers."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from datetime import datetime
from typing import Any

import pytest

from tests.inprocess.conftest import IMAGE, Caller, Daemon


def test_a_job_goes_from_queued_through_running_to_succeeded(daemon: Daemon) -> None:
    submitted = daemon.admin.submit("detectnet_v2", "hold", "go")
    assert submitted["status"] == "queued"  # answered at once: the runner owns the rest
    assert submitted["command"] == ["detectnet_v2", "hold", "go"]
    assert submitted["image"] == IMAGE
    running = daemon.admin.wait_for(submitted["id"], "running")
    assert running["container_id"] and running["started_at"] and running["finished_at"] is None
    daemon.engine.release("go")
    done = daemon.admin.wait_for(submitted["id"], "succeeded", "failed", "error", "cancelled")
    assert (done["status"], done["exit_code"], done["error"]) == ("succeeded", 0, None)
    assert _time(done["finished_at"]) >= _time(done["started_at"]) >= _time(done["created_at"])
    assert daemon.admin.logs(submitted["id"]) == b"holding go\nreleased go\n"
    daemon.wait_until_released()  # just after the exit code was recorded


@pytest.mark.parametrize(
    ("args", "status", "exit_code"),
    [(["exit", "0"], "succeeded", 0), (["exit", "3"], "failed", 3), (["exit", "255"], "failed", 255)],
)
def test_the_exit_code_decides_between_succeeded_and_failed(daemon: Daemon, args: list[str], status: str, exit_code: int) -> None:
    job = daemon.admin.submit("detectnet_v2", args[0], *args[1:])
    done = daemon.admin.wait_for(job["id"], "succeeded", "failed", "error")
    assert (done["status"], done["exit_code"]) == (status, exit_code)


@pytest.mark.parametrize(("task", "exit_code", "says"), [("missing", 127, "does not exist"), ("not_executable", 126, "cannot be executed")])
def test_an_entrypoint_that_cannot_run_is_an_error_with_docker_runs_code(daemon: Daemon, task: str, exit_code: int, says: str) -> None:
    job = daemon.admin.submit(task, None)
    done = daemon.admin.wait_for(job["id"], "error", "failed", "succeeded")
    assert (done["status"], done["exit_code"]) == ("error", exit_code)
    assert says in done["error"]


def test_the_argv_is_stored_and_run_as_a_list(daemon: Daemon) -> None:
    args = ["two words", "", "$HOME", "é", "-e", "a;b"]
    job = daemon.admin.submit("detectnet_v2", "argv", *args)
    assert job["args"] == args and job["command"] == ["detectnet_v2", "argv", *args]
    daemon.admin.wait_for(job["id"], "succeeded")
    assert daemon.admin.logs(job["id"]) == b"".join(arg.encode() + b"\0" for arg in args)
    assert daemon.engine.launched[-1].command == ["detectnet_v2", "argv", *args]


def test_run_runs_the_command_itself(daemon: Daemon) -> None:
    job = daemon.admin.submit("unet", "run", "detectnet_v2", "exit", "5")
    assert job["command"] == ["detectnet_v2", "exit", "5"]
    assert daemon.admin.wait_for(job["id"], "failed")["exit_code"] == 5
    refused = daemon.admin.post("/v1/jobs", json={"task": "unet", "subtask": "run", "args": []})
    assert refused.status_code == 422
    assert refused.json()["error"] == {
        "code": "invalid_request",
        "message": "`run` needs a command to run in the task's image (or -i, for the image's own shell)",
        "field": "args",
    }


def test_cancelling_a_running_job_stops_it_and_releases_its_run(daemon: Daemon) -> None:
    job = daemon.admin.submit("detectnet_v2", "sleep", "600")
    daemon.admin.wait_for(job["id"], "running")
    answer = daemon.admin.post(f"/v1/jobs/{job['id']}/cancel")
    assert answer.status_code == 202
    assert answer.json()["cancel_requested"] is True
    done = daemon.admin.wait_for(job["id"], "cancelled")
    assert done["exit_code"] == 143  # the task answered SIGTERM
    assert daemon.admin.logs(job["id"]) == b"sleeping 600\ngot SIGTERM\n"
    assert daemon.engine.runs() == []


def test_cancelling_a_queued_job_ends_it_at_once_without_a_run(start_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon = start_daemon(max_running_jobs=1)
    blocker = daemon.admin.submit("detectnet_v2", "hold", "blocker")
    daemon.admin.wait_for(blocker["id"], "running")
    waiting = daemon.admin.submit("detectnet_v2", "exit", "0")
    cancelled = daemon.admin.post(f"/v1/jobs/{waiting['id']}/cancel").json()
    assert (cancelled["status"], cancelled["exit_code"]) == ("cancelled", None)
    daemon.engine.release("blocker")
    daemon.admin.wait_for(blocker["id"], "succeeded")
    assert [spec.job_id for spec in daemon.engine.launched] == [blocker["id"]]
    # Cancelling an ended job changes nothing.
    again = daemon.admin.post(f"/v1/jobs/{waiting['id']}/cancel")
    assert again.status_code == 202 and again.json()["status"] == "cancelled"


def test_a_repeated_id_returns_the_same_job_and_a_different_request_conflicts(daemon: Daemon) -> None:
    first = daemon.admin.submit("detectnet_v2", "exit", "0", id="my-run-1")
    again = daemon.admin.submit("detectnet_v2", "exit", "0", id="my-run-1", expect=200)
    assert again["id"] == first["id"] == "my-run-1"
    conflict = daemon.admin.post("/v1/jobs", json={"task": "detectnet_v2", "subtask": "exit", "args": ["1"], "id": "my-run-1"})
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "job_conflict"
    assert len([spec for spec in daemon.engine.launched if spec.job_id == "my-run-1"]) == 1


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"task": "no_such_task"}, "unknown_task", "task"),
        ({"task": "detectnet_v2", "args": ["a\u0000b"]}, "invalid_request", "args[0]"),
        ({"task": "detectnet_v2", "id": "not ok!"}, "invalid_request", "id"),
        ({"task": "detectnet_v2", "launch_config": {"Mounts": "x"}, "launch_config_source": "/m.json"}, "invalid_launch_config", "Mounts"),
        ({"task": "detectnet_v2", "gpus": "2"}, "gpus_unavailable", "gpus"),
        ({"task": "detectnet_v2", "surprise": 1}, "invalid_request", "surprise"),
        ({"task": "detectnet_v2", "pull": "sometimes"}, "invalid_request", "pull"),
    ],
)
def test_a_bad_submission_is_a_422_naming_the_field_and_records_nothing(daemon: Daemon, body: dict, code: str, field: str) -> None:  # type: ignore[type-arg]
    answer = daemon.admin.post("/v1/jobs", json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == code
    assert error["field"] == field
    assert error["message"]
    assert daemon.admin.get("/v1/jobs").json()["jobs"] == []


def test_a_launch_config_error_names_its_file(daemon: Daemon) -> None:
    body = {"task": "detectnet_v2", "launch_config": {"DockerOptions": {"shm": "1G"}}, "launch_config_source": "/home/me/.tao_mounts.json"}
    error = daemon.admin.post("/v1/jobs", json=body).json()["error"]
    assert error["source"] == "/home/me/.tao_mounts.json"
    assert error["field"] == "DockerOptions.shm"
    assert error["message"].startswith("/home/me/.tao_mounts.json: DockerOptions.shm: unknown key 'shm'")


_DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"task": "detectnet_v2", "launch_config": {"DockerOptions": {"shm_size": ' + _DEEP.encode() + b"}}}", "nested too deeply"),
        (b'{"task": "detectnet_v2", "args": [' + _DEEP.encode() + b"]}", "nested too deeply"),
        (b'{"task": "detectnet_v2", "launch_config": {"DockerOptions": {"shm_size": ' + b"1" * 5000 + b"}}}", "more than 4300 digits"),
        (b'{"task": "detectnet_v2", "args": ["caf\xe9"]}', "cannot be decoded as utf-8 at byte 38: invalid continuation byte"),
        (b'{"task": "detectnet_v2",, }', "Expecting property name enclosed in double quotes"),
    ],
    ids=["deep-launch-config", "deep-args", "long-number", "not-utf-8", "malformed"],
)
def test_a_body_that_is_not_json_python_can_read_is_a_422_and_records_nothing(daemon: Daemon, body: bytes, says: str) -> None:
    answer = daemon.client.post("/v1/jobs", content=body, headers={**daemon.admin.headers, "Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith("the request body is not valid JSON: ")
    assert says in error["message"]
    assert daemon.admin.get("/v1/jobs").json()["jobs"] == []


def test_listing_pages_newest_first_and_filters(daemon: Daemon) -> None:
    ids = [daemon.admin.submit("detectnet_v2", "exit", str(n))["id"] for n in range(7)]
    for job_id in ids:
        daemon.admin.wait_for(job_id, "succeeded", "failed")
    seen, cursor = [], None
    while True:
        page = daemon.admin.get("/v1/jobs", params={"limit": 3, **({"cursor": cursor} if cursor else {})}).json()
        seen += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    failed = daemon.admin.get("/v1/jobs", params={"status": "failed"}).json()["jobs"]
    assert sorted(job["id"] for job in failed) == sorted(ids[1:])
    one = daemon.admin.job(ids[0])
    container = one["container_id"]
    assert [job["id"] for job in daemon.admin.get("/v1/jobs", params={"container_id": container[:12]}).json()["jobs"]] == [ids[0]]


def test_a_container_id_prefix_is_literal_not_a_pattern(daemon: Daemon) -> None:
    ids = [daemon.admin.submit("detectnet_v2", "exit", "0")["id"] for _ in range(3)]
    for job_id in ids:
        daemon.admin.wait_for(job_id, "succeeded")
    # Backends name runs as they like; SQL LIKE would read `_` as any one character and `%` as any run of them.
    with closing(sqlite3.connect(daemon.settings.db_path)) as db, db:
        for job_id, container in zip(ids, ("run_1", "runx1", "run%2"), strict=True):
            db.execute("UPDATE job SET container_id = ? WHERE id = ?", (container, job_id))

    def matching(prefix: str) -> list[str]:
        return [job["id"] for job in daemon.admin.get("/v1/jobs", params={"container_id": prefix}).json()["jobs"]]

    assert matching("run_") == [ids[0]]
    assert matching("run%") == [ids[2]]
    assert matching("run") == list(reversed(ids))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"cursor": "abc"}, "cursor"),
        ({"cursor": "9" * 5000}, "cursor"),  # past int()'s 4300 digits
        ({"container_id": " "}, "container_id"),
        ({"status": "done"}, "status.0"),
    ],
)
def test_bad_list_parameters_are_422(daemon: Daemon, params: dict, field: str) -> None:  # type: ignore[type-arg]
    answer = daemon.admin.get("/v1/jobs", params=params)
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == field


def test_an_unknown_job_is_a_404_on_every_route(daemon: Daemon) -> None:
    expected = {"code": "job_not_found", "message": "no job 'nope'; `tao list --all` shows the known jobs", "field": "id"}
    for method, path in [
        ("GET", "/v1/jobs/nope"),
        ("POST", "/v1/jobs/nope/cancel"),
        ("GET", "/v1/jobs/nope/logs"),
        ("GET", "/v1/jobs/nope/events"),
    ]:
        answer = daemon.client.request(method, path, headers=daemon.admin.headers)
        assert answer.status_code == 404, path
        assert answer.json()["error"] == expected


def _events_with_image(caller: Caller, job_id: str, timeout: float = 30) -> dict[str, Any]:
    """The job's events once its `image` event is there: it is recorded beside the run, not before it goes on."""
    deadline = time.monotonic() + timeout
    while True:
        page: dict[str, Any] = caller.get(f"/v1/jobs/{job_id}/events").json()
        if any(event["type"] == "image" for event in page["events"]):
            return page
        assert time.monotonic() < deadline, f"job {job_id} never recorded its image"
        time.sleep(0.005)


def test_a_started_job_records_the_image_it_runs_from(daemon: Daemon) -> None:
    job = daemon.alice.submit("detectnet_v2", "exit", "0")
    page = _events_with_image(daemon.alice, job["id"])
    image = next(event["data"] for event in page["events"] if event["type"] == "image")
    assert image["reference"] == IMAGE and image["id"].startswith("sha256:") and image["digests"] == []


def test_events_record_the_pull_of_a_missing_image(daemon: Daemon) -> None:
    daemon.engine.images.clear()
    job = daemon.admin.submit("detectnet_v2", "exit", "0")
    daemon.admin.wait_for(job["id"], "succeeded")
    page = _events_with_image(daemon.admin, job["id"])
    statuses = [event["data"]["status"] for event in page["events"] if event["type"] == "pull"]
    assert statuses[-1] == "pulled" and "Pull complete" in statuses
    assert page["next_after"] == page["events"][-1]["seq"] == len(page["events"])
    later = daemon.admin.get(f"/v1/jobs/{job['id']}/events", params={"after": page["next_after"]}).json()
    assert later == {"events": [], "next_after": page["next_after"]}
    assert daemon.engine.pulled == [(IMAGE, None)]


def test_a_pull_that_fails_ends_the_job_with_its_error(daemon: Daemon) -> None:
    daemon.engine.images.clear()
    daemon.engine.missing_images.add(IMAGE)
    job = daemon.admin.submit("detectnet_v2", "exit", "0")
    done = daemon.admin.wait_for(job["id"], "error")
    assert done["exit_code"] == 125
    assert f"image {IMAGE} was not found in registry" in done["error"]
    assert daemon.engine.launched == []


def test_pull_policy_never_refuses_an_absent_image(daemon: Daemon) -> None:
    daemon.engine.images.clear()
    job = daemon.admin.submit("detectnet_v2", "exit", "0", pull="never")
    done = daemon.admin.wait_for(job["id"], "error")
    assert "pull policy is never" in done["error"] and done["exit_code"] == 125
    assert daemon.engine.pulled == []


def test_pull_policy_always_pulls_a_present_image(daemon: Daemon) -> None:
    job = daemon.admin.submit("detectnet_v2", "exit", "0", pull="always")
    daemon.admin.wait_for(job["id"], "succeeded")
    assert daemon.engine.pulled == [(IMAGE, None)]


def test_a_job_cancelled_while_its_image_is_pulled_ends_cancelled_and_never_runs(daemon: Daemon) -> None:
    daemon.engine.images.clear()
    daemon.engine.pull_gate.clear()
    job = daemon.admin.submit("detectnet_v2", "exit", "0")
    daemon.admin.wait_for(job["id"], "pulling")
    daemon.admin.post(f"/v1/jobs/{job['id']}/cancel")
    assert daemon.admin.wait_for(job["id"], "cancelled")["exit_code"] is None
    daemon.engine.pull_gate.set()  # the pull goes on without the job, and ends
    deadline = time.monotonic() + 30
    while IMAGE not in daemon.engine.images:
        assert time.monotonic() < deadline, "the pull never ended"
        time.sleep(0.005)
    assert daemon.admin.job(job["id"])["status"] == "cancelled"
    assert daemon.engine.launched == []


def test_an_admins_job_runs_as_the_admin_unless_it_names_a_user(daemon: Daemon) -> None:
    job = daemon.admin.submit("detectnet_v2", "id")
    assert job["docker_options"]["user"] == "0:0"
    named = daemon.admin.submit("detectnet_v2", "id", launch_config={"DockerOptions": {"user": "4242:4242"}})
    assert named["docker_options"]["user"] == "4242:4242"
    daemon.admin.wait_for(named["id"], "succeeded")
    assert daemon.admin.logs(named["id"]) == b"uid=4242 gid=4242\n"


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))

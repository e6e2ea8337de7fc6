"""The REST and websocket API, over the daemon's real Unix socket."""

from __future__ import annotations

import json
import os

import pytest
from websockets.sync.client import unix_connect

from tao_server.testing.daemon import Daemon
from tests.conftest import IMAGE

pytestmark = pytest.mark.integration


def _submit(daemon: Daemon, **body) -> dict:  # type: ignore[no-untyped-def]
    with daemon.http() as client:
        response = client.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _websocket_messages(daemon: Daemon, job_id: str, offset: int = 0) -> tuple[bytes, list[dict]]:
    output, control = b"", []
    with unix_connect(str(daemon.socket), f"ws://tao/v1/jobs/{job_id}/logs?offset={offset}", open_timeout=60) as ws:
        for message in ws:
            if isinstance(message, bytes):
                output += message
            else:
                control.append(json.loads(message))
    return output, control


def test_submit_answers_at_once_with_a_queued_job(new_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon = new_daemon("--max-running-jobs", "1").start()
    blocker = _submit(daemon, task="detectnet_v2", subtask="sleep", args=["600"])
    daemon.wait_for_status(blocker["id"], ("running",))
    # The only worker is busy: the answer cannot have waited for the job to start, let alone end.
    job = _submit(daemon, task="detectnet_v2", subtask="exit", args=["0"])
    assert job["status"] == "queued"
    assert job["command"] == ["detectnet_v2", "exit", "0"]
    assert job["image"] == IMAGE
    # The container runs as the caller, whom the daemon knows from the socket (SO_PEERCRED).
    assert job["docker_options"] == {"shm_size": 64 * 1024**2, "user": f"{os.getuid()}:{os.getgid()}"}
    assert daemon.tao("stop", blocker["id"]).returncode == 0
    assert daemon.wait_for_status(job["id"], ("succeeded",))["exit_code"] == 0


def test_resubmitting_the_same_id_is_harmless_and_a_different_job_conflicts(daemon: Daemon) -> None:
    body = {"id": "my-run-1", "task": "ssd", "subtask": "exit", "args": ["0"]}
    first = _submit(daemon, **body)
    with daemon.http() as client:
        again = client.post("/v1/jobs", json=body)
        assert again.status_code == 200
        assert again.json()["id"] == first["id"] == "my-run-1"
        other = client.post("/v1/jobs", json={**body, "args": ["1"]})
        assert other.status_code == 409
        assert other.json()["error"]["code"] == "job_conflict"
        listed = client.get("/v1/jobs", params={"limit": 500}).json()["jobs"]
    assert [job["id"] for job in listed].count("my-run-1") == 1


def test_errors_are_json_with_a_message_and_the_field(daemon: Daemon) -> None:
    with daemon.http() as client:
        missing = client.get("/v1/jobs/nosuchjob")
        assert missing.status_code == 404
        assert missing.json()["error"] == {
            "code": "job_not_found",
            "message": "no job 'nosuchjob'; `tao list --all` shows the known jobs",
            "field": "id",
        }
        bad_args = client.post("/v1/jobs", json={"task": "ssd", "args": "not a list"})
        assert bad_args.status_code == 422
        assert bad_args.json()["error"]["field"] == "args"
        bad_config = client.post(
            "/v1/jobs", json={"task": "ssd", "launch_config": {"Envs": {}}, "launch_config_source": "/home/me/.tao_mounts.json"}
        )
        assert bad_config.status_code == 422
        error = bad_config.json()["error"]
        assert error["code"] == "invalid_launch_config" and error["field"] == "Envs"
        assert error["message"].startswith("/home/me/.tao_mounts.json: Envs: expected a list")
        unknown = client.post("/v1/jobs", json={"task": "nope"})
        assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_task"


def test_a_body_nested_too_deeply_to_parse_is_a_422_not_a_traceback(daemon: Daemon) -> None:
    deep = "[" * 5000 + "]" * 5000
    body = f'{{"task": "ssd", "launch_config": {{"DockerOptions": {{"shm_size": {deep}}}}}, "launch_config_source": "/m.json"}}'
    with daemon.http() as client:
        answer = client.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == {
        "code": "invalid_request",
        "message": "the request body is not valid JSON: nested too deeply: arrays and objects more than 128 levels inside each other",
    }


def test_list_filters_by_status_and_pages_with_a_cursor(daemon: Daemon) -> None:
    ids = [_submit(daemon, task="ssd", subtask="exit", args=["0"])["id"] for _ in range(5)]
    for job_id in ids:
        daemon.wait_for_status(job_id, ("succeeded",))
    seen: list[str] = []
    cursor = None
    with daemon.http() as client:
        while True:
            params: dict[str, str | int] = {"limit": 2, "status": "succeeded", **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/jobs", params=params).json()
            assert len(page["jobs"]) <= 2
            assert all(job["status"] == "succeeded" for job in page["jobs"])
            seen += [job["id"] for job in page["jobs"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert client.get("/v1/jobs", params={"limit": 0}).status_code == 422
    assert seen[:5] == list(reversed(ids))  # newest first
    assert len(seen) == len(set(seen))


def test_plain_logs_endpoint_returns_text_from_an_offset(daemon: Daemon) -> None:
    job = _submit(daemon, task="ssd", subtask="exit", args=["7"])
    daemon.wait_for_status(job["id"], ("failed",))
    with daemon.http() as client:
        assert client.get(f"/v1/jobs/{job['id']}/logs").text == "exiting with 7\n"
        assert client.get(f"/v1/jobs/{job['id']}/logs", params={"offset": 8}).text == "with 7\n"


def test_websocket_replays_a_finished_job_and_sends_the_final_status(daemon: Daemon) -> None:
    job = _submit(daemon, task="ssd", subtask="exit", args=["3"])
    daemon.wait_for_status(job["id"], ("failed",))
    output, control = _websocket_messages(daemon, job["id"])
    assert output == b"exiting with 3\n"
    assert control[-1] == {"type": "end", "status": "failed", "exit_code": 3, "error": None}
    tail, _ = _websocket_messages(daemon, job["id"], offset=8)
    assert tail == b"with 3\n"


def test_websocket_follows_a_running_job_with_heartbeats_until_it_ends(daemon: Daemon) -> None:
    job = _submit(daemon, task="unet", subtask="run", args=["sh", "-c", "echo first; sleep 1.5; echo second"])
    output, control = _websocket_messages(daemon, job["id"])
    assert output == b"first\nsecond\n"
    assert {"type": "heartbeat"} in control  # the fixture daemon beats every 0.5 s
    assert control[-1] == {"type": "end", "status": "succeeded", "exit_code": 0, "error": None}


def test_many_websocket_followers_get_the_same_bytes(daemon: Daemon) -> None:
    from concurrent.futures import ThreadPoolExecutor

    job = _submit(daemon, task="unet", subtask="lines", args=["20000"])
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: _websocket_messages(daemon, job["id"])[0], range(8)))
    expected = b"".join(f"{i} the quick brown fox jumps over the lazy dog\n".encode() for i in range(1, 20001))
    assert all(result == expected for result in results)


def test_websocket_for_an_unknown_job_sends_an_error(daemon: Daemon) -> None:
    with unix_connect(str(daemon.socket), "ws://tao/v1/jobs/nosuchjob/logs", open_timeout=60) as ws:
        message = json.loads(ws.recv())
    assert message["type"] == "error" and message["code"] == "job_not_found"


def test_cancel_a_queued_job_before_it_starts(new_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon = new_daemon("--max-running-jobs", "1").start()
    busy = _submit(daemon, task="ssd", subtask="sleep", args=["30"])
    waiting = _submit(daemon, task="ssd", subtask="exit", args=["0"])
    daemon.wait_for_status(busy["id"], ("running",))
    assert daemon.job(waiting["id"])["status"] == "queued"
    with daemon.http() as client:
        cancelled = client.post(f"/v1/jobs/{waiting['id']}/cancel").json()
        assert cancelled["status"] == "cancelled" and cancelled["container_id"] is None
        client.post(f"/v1/jobs/{busy['id']}/cancel")
    daemon.wait_for_status(busy["id"], ("cancelled",))
    assert daemon.job(waiting["id"])["status"] == "cancelled"


def test_openapi_docs_are_served(daemon: Daemon) -> None:
    with daemon.http() as client:
        assert client.get("/docs").status_code == 200
        paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/cancel",
        "/v1/jobs/{job_id}/logs",
        "/v1/tasks",
        "/v1/info",
        "/healthz",
    } <= set(paths)


def test_hostile_inputs_are_refused_with_the_field(daemon: Daemon) -> None:
    with daemon.http() as client:
        nul = client.post("/v1/jobs", json={"task": "ssd", "subtask": "argv", "args": ["ok", "bad\u0000arg"]})
        assert nul.status_code == 422 and nul.json()["error"]["field"] == "args[1]"
        cursor = client.get("/v1/jobs", params={"cursor": "9" * 30})
        assert cursor.status_code == 422 and cursor.json()["error"]["field"] == "cursor"
        empty = client.get("/v1/jobs", params={"container_id": ""})
        assert empty.status_code == 422 and empty.json()["error"]["field"] == "container_id"
        cpus = client.post("/v1/jobs", json={"task": "ssd", "launch_config": {"DockerOptions": {"cpus": 1e300}}})
        assert cpus.status_code == 422 and cpus.json()["error"]["field"] == "DockerOptions.cpus"

"""Who may open a job's terminal or reach its ports, and what the websockets say when they may not."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.inprocess.conftest import Caller, Daemon


def _refusal(caller: Caller, path: str) -> tuple[dict[str, Any], int]:
    """The error message and close code a session websocket answers `caller` with."""
    with caller.client.websocket_connect(path, headers=caller.headers) as ws:
        error = json.loads(ws.receive_text())
        closing = ws.receive()
    assert closing["type"] == "websocket.close"
    return error, closing["code"]


def test_a_terminal_is_refused_on_a_backend_that_runs_jobs_in_batch(daemon: Daemon) -> None:
    answer = daemon.alice.submit("detectnet_v2", "run", "sh", expect=422, interactive=True, tty=True)
    assert answer["error"]["field"] == "tty"
    assert "-t" in answer["error"]["message"] and "batch" in answer["error"]["message"]
    job = daemon.alice.submit("detectnet_v2", "hold", "batch")
    error, code = _refusal(daemon.alice, f"/v1/jobs/{job['id']}/ports/8080")
    assert code == 4409 and "batch" in error["message"]


def test_run_without_a_command_needs_a_terminal(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(attaches=True)
    answer = daemon.alice.submit("detectnet_v2", "run", expect=422)
    assert "-i" in answer["error"]["message"]
    job = daemon.alice.submit("detectnet_v2", "run", interactive=True)
    assert job["command"] == [] and job["interactive"] is True  # the image's own command


def test_a_job_started_without_input_has_no_terminal(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(attaches=True)
    job = daemon.alice.submit("detectnet_v2", "hold", "plain")
    error, code = _refusal(daemon.alice, f"/v1/jobs/{job['id']}/terminal")
    assert code == 4409
    assert error["code"] == "not_attachable" and "-i" in error["message"] and f"tao logs -f {job['id']}" in error["message"]
    daemon.engine.release("plain")


def test_another_users_job_has_no_terminal_and_no_ports_for_them(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(attaches=True)
    job = daemon.alice.submit("detectnet_v2", "hold", "mine", interactive=True, tty=True)
    for path in (f"/v1/jobs/{job['id']}/terminal", f"/v1/jobs/{job['id']}/ports/8080"):
        error, code = _refusal(daemon.bob, path)
        assert code == 4404
        assert error["code"] == "job_not_found"  # as for a job that does not exist: nothing is revealed
    daemon.engine.release("mine")


def test_only_the_owner_reaches_a_jobs_ports_and_only_while_it_runs(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(attaches=True)
    job = daemon.alice.submit("detectnet_v2", "hold", "admin", interactive=True)
    error, code = _refusal(daemon.admin, f"/v1/jobs/{job['id']}/ports/8080")
    assert code == 4403 and "only its owner" in error["message"]
    daemon.engine.release("admin")
    daemon.alice.wait_for(job["id"], "succeeded")
    error, code = _refusal(daemon.alice, f"/v1/jobs/{job['id']}/ports/8080")
    assert code == 4409 and "has ended" in error["message"]


def test_a_job_that_has_not_started_has_no_ports_yet(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(attaches=True, max_running_jobs=1)
    first = daemon.alice.submit("detectnet_v2", "hold", "first")
    daemon.alice.wait_for(first["id"], "running")
    waiting = daemon.alice.submit("detectnet_v2", "hold", "second")  # queued behind the first
    error, code = _refusal(daemon.alice, f"/v1/jobs/{waiting['id']}/ports/8080")
    assert code == 4409 and "has not started yet (queued)" in error["message"]
    answer = daemon.alice.post(f"/v1/jobs/{waiting['id']}/ports/8080/connection")
    assert answer.status_code == 422 and "only on the Unix socket" in answer.json()["error"]["message"]  # a token caller
    daemon.engine.release("first")
    daemon.engine.release("second")


def test_the_tasks_say_whether_jobs_may_be_interactive(start_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    assert start_daemon().alice.get("/v1/tasks").json()["interactive"] is False
    assert start_daemon(data_dir=tmp_path / "other", attaches=True).alice.get("/v1/tasks").json()["interactive"] is True


def test_a_terminal_replays_the_output_of_a_job_that_ended_and_says_how(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(attaches=True)
    job = daemon.alice.submit("detectnet_v2", "exit", "3", interactive=True)
    daemon.alice.wait_for(job["id"], "failed")
    with daemon.client.websocket_connect(f"/v1/jobs/{job['id']}/terminal?offset=0", headers=daemon.alice.headers) as ws:
        assert ws.receive_bytes() == daemon.alice.logs(job["id"])
        assert json.loads(ws.receive_text()) == {"type": "end", "status": "failed", "exit_code": 3, "error": None}


def test_the_openapi_description_documents_the_session_websockets(daemon: Daemon) -> None:
    description = daemon.admin.get("/openapi.json").json()["info"]["description"]
    for text in ("/v1/jobs/{id}/terminal", '"resize"', "/v1/jobs/{id}/ports/{port}", '"eof"', "4404"):
        assert text in description

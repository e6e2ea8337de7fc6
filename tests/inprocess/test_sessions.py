"""Who may open a job's terminal or reach its ports, and what the websockets say when they may not."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

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


def _accepted(caller: Caller, path: str, held: ExitStack) -> Any:
    """A session websocket the daemon took, held open until `held` closes: it says so with a heartbeat."""
    ws = held.enter_context(caller.client.websocket_connect(path, headers=caller.headers))
    while "text" not in (message := ws.receive()):  # the job's output, if it printed as the session opened
        assert message["type"] == "websocket.send", message
    assert json.loads(message["text"]) == {"type": "heartbeat"}
    return ws


def test_sessions_past_a_jobs_bound_are_refused_naming_the_setting_and_a_closed_one_frees_its_place(
    start_daemon: Callable[..., Daemon],
) -> None:
    daemon = start_daemon(attaches=True, max_sessions_per_job=2)
    job = daemon.alice.submit("detectnet_v2", "hold", "bounded", interactive=True, tty=True)
    terminal = f"/v1/jobs/{job['id']}/terminal"
    with ExitStack() as held:
        with ExitStack() as first:
            _accepted(daemon.alice, terminal, first)
            _accepted(daemon.alice, terminal, held)
            error, code = _refusal(daemon.alice, terminal)
            assert code == 4429 and error["code"] == "too_many_sessions"
            assert error["message"] == (
                f"job {job['id']} has 2 sessions open (terminals and forwarded connections), as many as this daemon allows "
                "one job (TAO_MAX_SESSIONS_PER_JOB=2); close one and try again"
            )
            error, code = _refusal(daemon.alice, f"/v1/jobs/{job['id']}/ports/8080")  # forwarded connections count the same
            assert code == 4429
        _accepted(daemon.alice, terminal, held)  # the first one closed: its place is free
    daemon.engine.release("bounded")


def test_a_users_bound_spans_their_jobs_and_holds_nobody_else_back(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(attaches=True, max_sessions_per_user=2)
    jobs = [daemon.alice.submit("detectnet_v2", "hold", name, interactive=True, tty=True) for name in ("one", "two")]
    bobs = daemon.bob.submit("detectnet_v2", "hold", "bobs", interactive=True, tty=True)
    with ExitStack() as held:
        for job in jobs:
            _accepted(daemon.alice, f"/v1/jobs/{job['id']}/terminal", held)
        error, code = _refusal(daemon.alice, f"/v1/jobs/{jobs[0]['id']}/terminal")
        assert code == 4429 and "you have 2 sessions open" in error["message"] and "TAO_MAX_SESSIONS_PER_USER=2" in error["message"]
        _accepted(daemon.bob, f"/v1/jobs/{bobs['id']}/terminal", held)
        assert daemon.bob.get("/v1/jobs").status_code == 200
    for name in ("one", "two", "bobs"):
        daemon.engine.release(name)


def test_a_jobs_end_ends_its_sessions_and_frees_their_places(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(attaches=True, max_sessions_per_user=1)
    job = daemon.alice.submit("detectnet_v2", "hold", "ending", interactive=True, tty=True)
    with ExitStack() as held:
        ws = _accepted(daemon.alice, f"/v1/jobs/{job['id']}/terminal", held)
        daemon.engine.release("ending")
        while "text" not in (message := ws.receive()) or json.loads(message["text"])["type"] == "heartbeat":
            pass
        assert json.loads(message["text"]) == {"type": "end", "status": "succeeded", "exit_code": 0, "error": None}
        assert ws.receive()["type"] == "websocket.close"
    later = daemon.alice.submit("detectnet_v2", "hold", "later", interactive=True, tty=True)
    with ExitStack() as held:
        _accepted(daemon.alice, f"/v1/jobs/{later['id']}/terminal", held)
    daemon.engine.release("later")


@pytest.mark.parametrize(
    ("frame", "says"),
    [
        ("[" * 5000 + "]" * 5000, "10000 bytes, more than the 4096 this daemon reads here"),
        (
            '{"type": "resize", "rows": ' + "[" * 200 + "]" * 200 + "}",
            "nested too deeply: arrays and objects more than 128 levels inside each other",
        ),
        ('{"type": "' + "x" * 5000 + '"}', "5012 bytes, more than the 4096 this daemon reads here"),
        ('{"type": "eof",}', "line 1, column 16: Expecting property name enclosed in double quotes"),
    ],
    ids=["nested-5000", "nested-200-inside-a-resize", "too-long", "malformed"],
)
def test_a_control_frame_the_daemon_does_not_read_is_refused_with_a_message(
    start_daemon: Callable[..., Daemon], frame: str, says: str
) -> None:
    daemon = start_daemon(attaches=True)
    job = daemon.alice.submit("detectnet_v2", "hold", "framed", interactive=True, tty=True)
    with daemon.client.websocket_connect(f"/v1/jobs/{job['id']}/terminal", headers=daemon.alice.headers) as ws:
        ws.send_text(frame)
        while "text" not in (message := ws.receive()) or json.loads(message["text"])["type"] == "heartbeat":
            pass
        closing = ws.receive()
    refusal = json.loads(message["text"])
    assert refusal["type"] == "error" and refusal["code"] == "invalid_request"
    assert (
        refusal["message"] == f'a control frame the daemon does not read: {says}; control frames are JSON objects such as {{"type": "eof"}}'
    )
    assert closing == {"type": "websocket.close", "code": 4400, "reason": ""}
    daemon.alice.wait_for(job["id"], "running")  # the session ended; the job goes on
    daemon.engine.release("framed")

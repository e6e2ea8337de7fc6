"""Hostile and undecodable input, in process: refused at the edge with a clear error, nothing stored."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

import pytest

from tests.inprocess.conftest import Daemon


def _nothing_stored(daemon: Daemon) -> None:
    assert daemon.admin.get("/v1/jobs").json()["jobs"] == []
    assert daemon.engine.launched == []


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"task": "detectnet_v2", "subtask": "run", "args": ["echo", "caf\udce9.jpg"]}, "args[1]", "'caf\\xe9.jpg' is not valid UTF-8"),
        ({"task": "detectnet_v2", "subtask": "argv", "args": ["\ud800"]}, "args[0]", "is not valid UTF-8"),
        ({"task": "detectnet_v2", "subtask": "ex\u0000it"}, "subtask", "NUL byte"),
        ({"task": "detectnet_v2", "group": "g\udcff"}, "group", "is not valid UTF-8"),
        ({"task": "detectnet_v2", "id": "run-\udce9"}, "id", "unable to parse raw data as a unicode string"),  # the id's pattern
        (
            {"task": "detectnet_v2", "launch_config": {"Mounts": [{"source": "/tmp/caf\udce9", "destination": "/data"}]}},
            "Mounts[0].source",
            "is not valid UTF-8",
        ),
        (
            {"task": "detectnet_v2", "launch_config": {"Envs": [{"variable": "A", "value": "\udce9"}]}},
            "Envs[0].value",
            "is not valid UTF-8",
        ),
    ],
)
def test_text_the_engine_cannot_carry_is_refused_naming_where_it_is(daemon: Daemon, body: dict, field: str, says: str) -> None:  # type: ignore[type-arg]
    # Sent as Python's json writes it: lone surrogates as \\u escapes, which the daemon's parser accepts.
    answer = daemon.alice.client.post(
        "/v1/jobs", content=json.dumps(body), headers={**daemon.alice.headers, "content-type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == field
    assert says in error["message"]
    _nothing_stored(daemon)


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"task": "detectnet_v2", "args": ["x"] * 4097}, "args", "at most 4096 (TAO_MAX_ARGS)"),
        ({"task": "detectnet_v2", "args": ["ok", "y" * (128 * 1024 + 1)]}, "args[1]", "at most 131072"),
        (
            {"task": "detectnet_v2", "launch_config": {"Envs": [{"variable": f"V{n}", "value": "1"} for n in range(1025)]}},
            "Envs",
            "at most 1024",
        ),
        (
            {"task": "detectnet_v2", "launch_config": {"Mounts": [{"source": "/tmp", "destination": f"/m{n}"} for n in range(257)]}},
            "Mounts",
            "at most 256",
        ),
    ],
)
def test_requests_past_the_limits_are_refused_naming_the_limit(daemon: Daemon, body: dict, field: str, says: str) -> None:  # type: ignore[type-arg]
    answer = daemon.alice.post("/v1/jobs", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == field
    assert says in answer.json()["error"]["message"]
    _nothing_stored(daemon)


def test_a_body_over_the_size_limit_is_refused_before_it_is_read(daemon: Daemon) -> None:
    declared = daemon.alice.post("/v1/jobs", content=b"x" * (4 * 1024**2 + 1), headers={"content-type": "application/json"})
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "request_too_large"
    assert "at most 4194304 (TAO_MAX_REQUEST_BYTES)" in declared.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"task": "detectnet_v2", "args": ["'
        for _ in range(5):
            yield b"y" * 1024**2
        yield b'"]}'

    streamed = daemon.alice.post("/v1/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    _nothing_stored(daemon)


def test_a_limit_is_a_setting(start_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon: Daemon = start_daemon(max_args=2, max_request_bytes=2048)
    refused = daemon.alice.post("/v1/jobs", json={"task": "detectnet_v2", "subtask": "argv", "args": ["a", "b", "c"]})
    assert refused.json()["error"]["message"].startswith("args: 3 arguments; a job takes at most 2")
    assert daemon.alice.post("/v1/jobs", json={"task": "detectnet_v2", "args": ["z" * 3000]}).status_code == 413


def test_logins_and_pulls_refuse_undecodable_text(daemon: Daemon) -> None:
    login = daemon.alice.client.post(
        "/v1/credentials",
        content=json.dumps({"registry": "r.example", "username": "al\udce9", "password": "p"}),
        headers={**daemon.alice.headers, "content-type": "application/json"},
    )
    assert (login.status_code, login.json()["error"]["field"]) == (422, "username")
    pull = daemon.alice.client.post(
        "/v1/images/pull",
        content=json.dumps({"tasks": ["detectnet_v2\udce9"]}),
        headers={**daemon.alice.headers, "content-type": "application/json"},
    )
    assert (pull.status_code, pull.json()["error"]["field"]) == (422, "tasks[0]")


def test_a_stored_row_that_is_not_text_never_breaks_a_listing(daemon: Daemon) -> None:
    job = daemon.alice.submit("detectnet_v2", "exit", "0")
    daemon.alice.wait_for(job["id"], "succeeded")
    # A row stored by an older daemon, before text was checked at the edge.
    with sqlite3.connect(daemon.settings.db_path) as db:
        db.execute("UPDATE job SET args = ? WHERE id = ?", (json.dumps(["caf\udce9.jpg"]), job["id"]))
    for caller in (daemon.alice, daemon.admin):
        listed = caller.get("/v1/jobs")
        assert listed.status_code == 200
        [shown] = listed.json()["jobs"]
        assert shown["args"][0].startswith("caf") and "\ufffd" in shown["args"][0]
    assert daemon.alice.get(f"/v1/jobs/{job['id']}").status_code == 200

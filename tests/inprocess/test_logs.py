"""/v1/jobs/{id}/logs in process: text from an offset, the follow stream, and the websocket."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx

from tests.inprocess.conftest import Daemon


def test_logs_read_from_any_offset(daemon: Daemon) -> None:
    job = daemon.admin.submit("detectnet_v2", "lines", "50")
    daemon.admin.wait_for(job["id"], "succeeded")
    whole = daemon.admin.logs(job["id"])
    assert whole.count(b"\n") == 50
    for offset in (0, 1, 100, len(whole), len(whole) + 10):
        assert daemon.admin.logs(job["id"], offset) == whole[offset:]
    for bad in (-1, 2**62 + 1):
        answer = daemon.admin.get(f"/v1/jobs/{job['id']}/logs", params={"offset": bad})
        assert answer.status_code == 422 and answer.json()["error"]["field"] == "offset"


def test_an_offset_past_any_file_reads_nothing_and_ends_with_the_job(daemon: Daemon) -> None:
    beyond = 2**44  # past ext4's largest file: seek() there fails with EINVAL
    job = daemon.admin.submit("detectnet_v2", "hold", "far")
    daemon.admin.wait_for_logs(job["id"], b"holding far\n")
    assert daemon.admin.logs(job["id"], beyond) == b""
    followed: list[httpx.Response] = []
    path = f"/v1/jobs/{job['id']}/logs"
    reader = threading.Thread(target=lambda: followed.append(daemon.admin.get(path, params={"offset": beyond, "follow": "true"})))
    reader.start()
    with daemon.client.websocket_connect(f"{path}?offset={beyond}", headers=daemon.admin.headers) as ws:
        assert ws.receive_json() == {"type": "heartbeat"}  # nothing to send while the job runs
        daemon.engine.release("far")
        assert _until_end(ws) == [{"type": "end", "status": "succeeded", "exit_code": 0, "error": None}]
    reader.join(timeout=30)
    assert [(answer.status_code, answer.content) for answer in followed] == [(200, b"")]


def test_following_returns_the_whole_output_once_the_job_ends(daemon: Daemon) -> None:
    job = daemon.admin.submit("detectnet_v2", "hold", "follow")
    daemon.admin.wait_for(job["id"], "running")
    followed: list[bytes] = []
    reader = threading.Thread(
        target=lambda: followed.append(daemon.admin.get(f"/v1/jobs/{job['id']}/logs", params={"follow": "true"}).content)
    )
    reader.start()
    daemon.engine.release("follow")
    reader.join(timeout=30)
    assert followed == [b"holding follow\nreleased follow\n"]


def test_the_websocket_replays_sends_heartbeats_and_ends_with_the_status(daemon: Daemon) -> None:
    job = daemon.admin.submit("detectnet_v2", "hold", "ws")
    daemon.admin.wait_for_logs(job["id"], b"holding ws\n")
    with daemon.client.websocket_connect(f"/v1/jobs/{job['id']}/logs", headers=daemon.admin.headers) as ws:
        assert ws.receive_bytes() == b"holding ws\n"  # the replay
        assert ws.receive_json() == {"type": "heartbeat"}  # the job stays quiet until released
        daemon.engine.release("ws")
        rest = _until_end(ws)
    assert rest[:-1] == [b"released ws\n"]
    assert rest[-1] == {"type": "end", "status": "succeeded", "exit_code": 0, "error": None}


def test_the_websocket_starts_at_an_offset(daemon: Daemon) -> None:
    job = daemon.admin.submit("detectnet_v2", "exit", "9")
    daemon.admin.wait_for(job["id"], "failed")
    with daemon.client.websocket_connect(f"/v1/jobs/{job['id']}/logs?offset=8", headers=daemon.admin.headers) as ws:
        assert ws.receive_bytes() == b"with 9\n"
        assert json.loads(ws.receive_text()) == {"type": "end", "status": "failed", "exit_code": 9, "error": None}


def _until_end(ws: Any) -> list[Any]:
    """The output frames and the end message that follow, heartbeats left out (their number depends on timing)."""
    received: list[Any] = []
    while True:
        message = ws.receive()
        if message.get("bytes") is not None:
            received.append(message["bytes"])
            continue
        parsed = json.loads(message["text"])
        if parsed["type"] != "heartbeat":
            received.append(parsed)
            return received

"""Hostile requests against the real daemon: huge bodies are refused unread, and the daemon's memory stays put;
JSON nested past the daemon's bound, in a body or a websocket's control frame, is refused with a message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tao_server.testing.daemon import Daemon
from tests.integration.conftest import until

pytestmark = pytest.mark.integration

MB = 1024**2


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_300_mb_body_is_refused_unread_and_memory_stays_put(daemon: Daemon) -> None:
    assert daemon.process is not None
    before = _rss_mb(daemon.process.pid)
    head = b"POST /v1/jobs HTTP/1.1\r\nHost: tao\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (300 * MB)
    answer = daemon.send_raw(head, (b"x" * MB for _ in range(300)))
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b'"code":"request_too_large"' in answer.replace(b" ", b"")

    chunked = b"POST /v1/jobs HTTP/1.1\r\nHost: tao\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    answer = daemon.send_raw(chunked, (b"%x\r\n%s\r\n" % (MB, b"y" * MB) for _ in range(300)))
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]

    after = _rss_mb(daemon.process.pid)
    assert after - before < 10, f"RSS went from {before:.1f} to {after:.1f} MB"
    with daemon.http() as client:
        assert client.get("/healthz").json() == {"status": "ok"}


NESTED = "[" * 5000 + "]" * 5000
TOO_DEEP = "nested too deeply: arrays and objects more than 128 levels inside each other"


def test_json_nested_5000_deep_is_refused_on_every_json_route_and_never_logs_a_traceback(daemon: Daemon) -> None:
    with daemon.http() as client:
        document = client.get("/openapi.json").json()
        with_bodies = sorted(path for path, operations in document["paths"].items() for op in operations.values() if "requestBody" in op)
        assert with_bodies == [
            "/v1/credentials",
            "/v1/images/pull",
            "/v1/jobs",
            "/v1/notify/urls",
            "/v1/pipelines",
            "/v1/sweeps",
        ]  # a new one is listed here too
        for path in [*with_bodies, "/ui/session"]:  # the dashboard's sign-in is the one body outside the API's document
            for body in (NESTED, "[" * 200 + "]" * 200):  # past Python's own limit, and within it but past the daemon's
                answer = client.post(path, content=body, headers={"Content-Type": "application/json"})
                assert answer.status_code == 422, (path, answer.text)
                assert answer.json()["error"] == {"code": "invalid_request", "message": f"the request body is not valid JSON: {TOO_DEEP}"}
    assert "Traceback" not in daemon.server_log()


def test_a_control_frame_nested_5000_deep_is_refused_on_every_websocket_and_never_logs_a_traceback(daemon: Daemon) -> None:
    from websockets.sync.client import unix_connect

    started = daemon.tao("-di", "detectnet_v2", "run", "sh", "-c", "nc -ll -p 9000 -e cat & exec cat")
    assert started.returncode == 0, started.stderr
    job_id = started.stdout.decode().strip()
    daemon.wait_for_status(job_id, ("running",))
    address = str(daemon.socket)

    def refusal(path: str, frame: str) -> tuple[dict[str, Any], int | None]:
        with unix_connect(address, f"ws://tao{path}", open_timeout=60) as ws:
            ws.send(frame)
            while isinstance(message := ws.recv(timeout=60), bytes) or json.loads(message)["type"] == "heartbeat":
                pass
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=60)
        return json.loads(message), ws.close_code

    until(lambda: _port_answers(address, job_id), "the job's echo server answers")
    for path in (f"/v1/jobs/{job_id}/terminal", f"/v1/jobs/{job_id}/ports/9000"):
        for frame, says in ((NESTED, "10000 bytes, more than the 4096 this daemon reads here"), ("[" * 200 + "]" * 200, TOO_DEEP)):
            error, code = refusal(path, frame)
            assert (error["type"], error["code"], code) == ("error", "invalid_request", 4400)
            assert error["message"].startswith(f"a control frame the daemon does not read: {says}")

    # The logs websocket reads nothing from its client: such a frame changes nothing, and the stream goes on to the end.
    with unix_connect(address, f"ws://tao/v1/jobs/{job_id}/logs", open_timeout=60) as ws:
        ws.send(NESTED)
        assert daemon.tao("stop", job_id).returncode == 0
        while isinstance(message := ws.recv(timeout=60), bytes) or json.loads(message)["type"] == "heartbeat":
            pass
        assert json.loads(message)["type"] == "end"
    assert daemon.job(job_id)["status"] == "cancelled"
    assert "Traceback" not in daemon.server_log()


def _port_answers(address: str, job_id: str) -> bool:
    from websockets.sync.client import unix_connect

    with unix_connect(address, f"ws://tao/v1/jobs/{job_id}/ports/9000", open_timeout=60) as ws:
        ws.send(b"ping\n")
        try:
            return ws.recv(timeout=60) == b"ping\n"
        except ConnectionClosed:
            return False  # nothing listens yet: the daemon said so, and closed

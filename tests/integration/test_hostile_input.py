"""Hostile requests against the real daemon: huge bodies are refused unread, and the daemon's memory stays put."""

from __future__ import annotations

from pathlib import Path

import pytest

from tao_server.testing.daemon import Daemon

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

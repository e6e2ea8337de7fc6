"""Hostile requests against the real daemon: huge bodies are refused unread, and the daemon's memory stays put."""

from __future__ import annotations

import socket
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


def _post_raw(daemon: Daemon, head: bytes, body_chunks: int, chunk: bytes) -> bytes:
    """Send a request head, then up to `body_chunks` pieces of body until the daemon answers; its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(60)
        sock.connect(str(daemon.socket))
        sock.sendall(head)
        for _ in range(body_chunks):
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break  # the daemon answered and closed: it read no more than it had to
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except ConnectionResetError:
            pass  # closed with our unread body still queued: what it answered before is here
    return answer


def test_a_300_mb_body_is_refused_unread_and_memory_stays_put(daemon: Daemon) -> None:
    assert daemon.process is not None
    before = _rss_mb(daemon.process.pid)
    head = b"POST /v1/jobs HTTP/1.1\r\nHost: tao\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (300 * MB)
    answer = _post_raw(daemon, head, body_chunks=300, chunk=b"x" * MB)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b'"code":"request_too_large"' in answer.replace(b" ", b"")

    chunked = b"POST /v1/jobs HTTP/1.1\r\nHost: tao\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    answer = _post_raw(daemon, chunked, body_chunks=300, chunk=b"%x\r\n%s\r\n" % (MB, b"y" * MB))
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]

    after = _rss_mb(daemon.process.pid)
    assert after - before < 10, f"RSS went from {before:.1f} to {after:.1f} MB"
    with daemon.http() as client:
        assert client.get("/healthz").json() == {"status": "ok"}

"""The CLI's websocket client (tao_client._websocket) against a server written here from RFC 6455, on a real Unix socket."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tao_client._http import Transport
from tao_client._websocket import BINARY, TEXT, Closed, _masked

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A server's frame: unmasked."""
    first = (0x80 if fin else 0) | opcode
    if len(payload) < 126:
        return struct.pack("!BB", first, len(payload)) + payload
    if len(payload) < 65536:
        return struct.pack("!BBH", first, 126, len(payload)) + payload
    return struct.pack("!BBQ", first, 127, len(payload)) + payload


def read_frame(conn: socket.socket) -> tuple[int, bytes]:
    """A client's frame, unmasked here; it must be masked."""

    def exactly(size: int) -> bytes:
        data = b""
        while len(data) < size:
            more = conn.recv(size - len(data))
            assert more, "the client closed mid-frame"
            data += more
        return data

    first, second = exactly(2)
    assert second & 0x80, "client frames must be masked"
    size = second & 0x7F
    if size == 126:
        size = struct.unpack("!H", exactly(2))[0]
    elif size == 127:
        size = struct.unpack("!Q", exactly(8))[0]
    mask = exactly(4)
    payload = exactly(size)
    return first & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if size < 4096 else _masked(payload, mask)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Callable[[socket.socket, bytes], None]], Transport]]:
    """Serve one connection with `script(conn, request_head)`; a Transport to it. `serve.finish()` waits for the script."""
    path = str(tmp_path / "ws.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(1)
    threads: list[threading.Thread] = []

    def start(script: Callable[[socket.socket, bytes], None]) -> Transport:
        def run() -> None:
            conn, _ = listener.accept()
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += conn.recv(4096)
                script(conn, head)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)
        return Transport("http://tao", path, timeout=10)

    def finish() -> None:
        for thread in threads:
            thread.join(timeout=10)
            assert not thread.is_alive(), "the server's script never finished"

    start.finish = finish  # type: ignore[attr-defined]
    yield start
    finish()
    listener.close()


def accept_header(head: bytes) -> bytes:
    key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n") if line.lower().startswith(b"sec-websocket-key"))
    return b"Sec-WebSocket-Accept: " + base64.b64encode(hashlib.sha1(key + GUID).digest())


def upgraded(head: bytes) -> bytes:
    return b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + accept_header(head) + b"\r\n\r\n"


def test_frames_both_ways_pings_answered_fragments_joined_and_the_close_returned(serve) -> None:  # type: ignore[no-untyped-def]
    big = os.urandom(300_000)
    heard: list[tuple[int, bytes]] = []

    def script(conn: socket.socket, head: bytes) -> None:
        assert b"GET /v1/jobs/j/terminal?offset=0 HTTP/1.1" in head
        # The first frame travels with the head: the client must not lose it to a buffer.
        conn.sendall(upgraded(head) + frame(BINARY, b"prompt$ "))
        conn.sendall(frame(0x9, b"are you there") + frame(TEXT, b'{"type": ', fin=False) + frame(0x0, b'"end"}'))
        heard.append(read_frame(conn))  # the pong
        heard.append(read_frame(conn))  # keys
        heard.append(read_frame(conn))  # a big paste
        conn.sendall(frame(BINARY, big) + frame(0x8, struct.pack("!H", 1000) + b"bye"))
        heard.append(read_frame(conn))  # the client's close

    transport = serve(script)
    status, _, websocket = transport.websocket("/v1/jobs/j/terminal", {"offset": 0})
    assert status == 101
    assert websocket.receive() == (BINARY, b"prompt$ ")
    assert websocket.receive() == (TEXT, b'{"type": "end"}')
    websocket.send_binary(b"ls\r")
    websocket.send_binary(big)
    assert websocket.receive() == (BINARY, big)
    with pytest.raises(Closed) as closed:
        websocket.receive()
    assert (closed.value.code, closed.value.reason) == (1000, "bye")
    websocket.close()
    serve.finish()
    assert heard == [(0xA, b"are you there"), (BINARY, b"ls\r"), (BINARY, big), (0x8, struct.pack("!H", 1000))]


def test_a_refused_upgrade_returns_the_status_and_the_body(serve) -> None:  # type: ignore[no-untyped-def]
    body = b'{"error": {"code": "unauthorized", "message": "no token"}}'

    def script(conn: socket.socket, head: bytes) -> None:
        conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    status, _, answer = serve(script).websocket("/v1/jobs/j/terminal")
    assert (status, answer) == (401, body)


def test_a_connection_cut_mid_frame_is_a_close_1006(serve) -> None:  # type: ignore[no-untyped-def]
    def script(conn: socket.socket, head: bytes) -> None:
        conn.sendall(upgraded(head) + frame(BINARY, b"x" * 1000)[:500])

    _, _, websocket = serve(script).websocket("/v1/jobs/j/ports/80")
    with pytest.raises(Closed) as closed:
        websocket.receive()
    assert closed.value.code == 1006


def test_an_answer_that_does_not_prove_the_key_is_refused(serve) -> None:  # type: ignore[no-untyped-def]
    from tao_client._http import TransportError

    def script(conn: socket.socket, head: bytes) -> None:
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: bm9wZQ==\r\n\r\n")

    with pytest.raises(TransportError, match="does not match"):
        serve(script).websocket("/v1/jobs/j/terminal")


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 1000, 65537])
def test_masking_is_its_own_inverse_and_matches_the_rfc(size: int) -> None:
    payload, mask = os.urandom(size), os.urandom(4)
    masked = _masked(payload, mask)
    assert masked == bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert _masked(masked, mask) == payload

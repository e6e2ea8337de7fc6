"""The client sends its bearer token over TCP only: on the Unix socket the kernel names the caller."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from tao_client._http import Transport


def _serve_once(listener: socket.socket, heads: list[bytes]) -> threading.Thread:
    def answer() -> None:
        connection, _ = listener.accept()
        with connection:
            head = b""
            while b"\r\n\r\n" not in head:
                head += connection.recv(4096)
            heads.append(head)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return thread


def test_token_goes_in_an_authorization_header_over_tcp():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        heads: list[bytes] = []
        server = _serve_once(listener, heads)
        port = listener.getsockname()[1]
        transport = Transport(f"http://127.0.0.1:{port}", None, 5, token="tao_abc_secret")
        assert transport.request("GET", "/v1/jobs").status_code == 200
        transport.close()
        server.join(5)
    assert b"\r\nAuthorization: Bearer tao_abc_secret\r\n" in heads[0]


def test_no_token_is_sent_on_the_unix_socket(tmp_path: Path):
    path = str(tmp_path / "tao.sock")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(path)
        listener.listen()
        heads: list[bytes] = []
        server = _serve_once(listener, heads)
        transport = Transport("http://tao", path, 5, token="tao_abc_secret")
        assert transport.request("GET", "/v1/jobs").status_code == 200
        transport.close()
        server.join(5)
    assert b"Authorization" not in heads[0]

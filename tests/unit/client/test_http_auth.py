"""The client sends its bearer token over TCP only: on the Unix socket the kernel names the caller."""

from __future__ import annotations

import queue
from contextlib import closing

from tests.unit.client.scripted_server import WAIT, ScriptedServer, reply, reply_and_close

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


def _three_requests(server: ScriptedServer, token: str | None) -> None:
    """A first request, one on the kept connection, and one sent again after the server closed that connection."""
    after: queue.Queue[None] = queue.Queue()
    server.script(reply(OK), reply_and_close(OK, after=after), reply(OK))
    with closing(server.transport(token=token)) as transport:
        assert transport.request("GET", "/v1/jobs").status_code == 200
        assert transport.request("GET", "/v1/jobs").status_code == 200
        after.put(None)
        assert server.closed.get(timeout=WAIT) == 1
        assert transport.request("POST", "/v1/jobs/j/cancel").status_code == 200
    assert server.connections == [1, 1, 2]


def test_token_goes_in_an_authorization_header_over_tcp(tcp_server: ScriptedServer) -> None:
    _three_requests(tcp_server, "tao_abc_secret")
    for seen in tcp_server.requests:
        assert b"\r\nAuthorization: Bearer tao_abc_secret\r\n" in seen.head


def test_no_authorization_header_over_tcp_without_a_token(tcp_server: ScriptedServer) -> None:
    _three_requests(tcp_server, None)
    assert not any(b"Authorization" in seen.head for seen in tcp_server.requests)


def test_no_token_is_sent_on_the_unix_socket(unix_server: ScriptedServer) -> None:
    _three_requests(unix_server, "tao_abc_secret")
    assert not any(b"Authorization" in seen.head for seen in unix_server.requests)

"""The client's own HTTP/1.1 framing (tao_client._http) against a scripted server that sends exact bytes.

Every test runs on a Unix socket and on TCP unless it is about one of them. Tests wait on queues
the server fills, never on the clock; socket timeouts are only a safety net.
"""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from contextlib import closing

import pytest

from tao_client._http import STREAM_CHUNK, TransportError
from tests.unit.client.scripted_server import WAIT, ScriptedServer, hang_up, reply, reply_and_close

CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def ok(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    """An answer with a Content-Length body: 200 unless `status` says otherwise."""
    extra = "".join(f"{header}\r\n" for header in headers)
    return f"HTTP/1.1 {status}\r\n{extra}Content-Length: {len(body)}\r\n\r\n".encode() + body


def take(pieces: Iterator[bytes], size: int) -> bytes:
    """At least `size` bytes from a stream: the pieces a Content-Length body arrives in are the kernel's to choose."""
    got = b""
    while len(got) < size:
        got += next(pieces)
    return got


# -- Content-Length --------------------------------------------------------------------------------


def test_a_content_length_body_is_read_whole(server: ScriptedServer) -> None:
    server.script(reply(ok(b'{"jobs": []}', "Content-Type: application/json")))
    with closing(server.transport()) as transport:
        response = transport.request("GET", "/v1/jobs")
    assert (response.status_code, response.is_success) == (200, True)
    assert response.headers["content-type"] == "application/json"
    assert response.content == b'{"jobs": []}'
    assert response.json() == {"jobs": []}


def test_a_content_length_body_streams_as_it_arrives(server: ScriptedServer) -> None:
    go: queue.Queue[None] = queue.Queue()
    server.script(reply(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst", b"-last", go=go))
    with closing(server.transport()) as transport:
        pieces = transport.request("GET", "/v1/jobs/j/logs", stream=True).iter_bytes()
        assert take(pieces, 5) == b"first"  # before the server has sent the rest
        go.put(None)
        assert take(pieces, 5) == b"-last"
        assert next(pieces, None) is None
    assert server.hangups.get(timeout=WAIT) == 1  # a finished stream closes its connection


def test_a_body_larger_than_a_stream_chunk_comes_in_pieces_of_at_most_a_stream_chunk(server: ScriptedServer) -> None:
    body = bytes(range(256)) * (STREAM_CHUNK // 256 * 2 + 7)
    server.script(reply(ok(body)), reply(ok(body)))
    with closing(server.transport()) as transport:
        assert transport.request("GET", "/whole").content == body
        pieces = list(transport.request("GET", "/streamed", stream=True).iter_bytes())
    assert b"".join(pieces) == body
    assert max(len(piece) for piece in pieces) <= STREAM_CHUNK


def test_a_204_answer_ends_with_its_head(server: ScriptedServer) -> None:
    server.script(reply(b"HTTP/1.1 204 No Content\r\n\r\n"), reply(ok(b"next")))
    with closing(server.transport()) as transport:
        assert transport.request("DELETE", "/v1/credentials/r").content == b""
        assert transport.request("GET", "/v1/info").content == b"next"
    assert server.connections == [1, 1]


# -- chunked ---------------------------------------------------------------------------------------


def test_a_chunked_body_is_read_whole_past_extensions_and_trailers(server: ScriptedServer) -> None:
    body = b"5;ext=1\r\nhello\r\n" + b"A\r\n0123456789\r\n" + b"2;a=b;c\r\nok\r\n" + b"0\r\nX-Trailer: yes\r\nX-Other: 2\r\n\r\n"
    server.script(reply(CHUNKED + body), reply(ok(b"second")))
    with closing(server.transport()) as transport:
        assert transport.request("GET", "/first").content == b"hello0123456789ok"
        assert transport.request("GET", "/second").content == b"second"  # the trailers were read to their end
    assert server.connections == [1, 1]


def test_a_chunked_body_streams_chunk_by_chunk(server: ScriptedServer) -> None:
    go: queue.Queue[None] = queue.Queue()
    server.script(reply(CHUNKED + b"5\r\nhello\r\n", b"6;ext=1\r\n world\r\n", b"0\r\nX-Trailer: yes\r\n\r\n", go=go))
    with closing(server.transport()) as transport:
        pieces = transport.request("GET", "/v1/jobs/j/logs", stream=True).iter_bytes()
        assert next(pieces) == b"hello"
        go.put(None)
        assert next(pieces) == b" world"
        go.put(None)
        assert next(pieces, None) is None
    assert server.hangups.get(timeout=WAIT) == 1


# -- close-delimited -------------------------------------------------------------------------------


def test_a_body_without_a_length_ends_when_the_server_closes(server: ScriptedServer) -> None:
    server.script(reply_and_close(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it"), reply(ok(b"next")))
    with closing(server.transport()) as transport:
        assert transport.request("GET", "/first").content == b"all of it"
        assert transport.request("GET", "/second").content == b"next"
    assert server.connections == [1, 2]


def test_a_body_without_a_length_streams_until_the_server_closes(server: ScriptedServer) -> None:
    go: queue.Queue[None] = queue.Queue()
    server.script(reply_and_close(b"HTTP/1.1 200 OK\r\n\r\npart one", b", part two", go=go))
    with closing(server.transport()) as transport:
        pieces = transport.request("GET", "/stream", stream=True).iter_bytes()
        assert take(pieces, 8) == b"part one"
        go.put(None)
        assert b"".join(pieces) == b", part two"


# -- keeping connections ---------------------------------------------------------------------------


def test_the_idle_connection_is_reused_for_the_next_request(server: ScriptedServer) -> None:
    server.script(reply(ok(b"one")), reply(CHUNKED + b"3\r\ntwo\r\n0\r\n\r\n"), reply(ok(b"three")))
    transport = server.transport()
    assert [transport.request("GET", f"/{n}").content for n in ("one", "two", "three")] == [b"one", b"two", b"three"]
    assert server.lines == [(1, "GET /one HTTP/1.1"), (1, "GET /two HTTP/1.1"), (1, "GET /three HTTP/1.1")]
    assert server.hangups.empty()
    transport.close()
    assert server.hangups.get(timeout=WAIT) == 1


def test_a_connection_close_answer_is_not_reused(server: ScriptedServer) -> None:
    server.script(reply(ok(b"one", "Connection: close")), reply(ok(b"two")))  # the server leaves closing to the client
    with closing(server.transport()) as transport:
        assert transport.request("GET", "/one").content == b"one"
        assert server.hangups.get(timeout=WAIT) == 1
        assert transport.request("GET", "/two").content == b"two"
    assert server.connections == [1, 2]


def test_streams_get_a_connection_of_their_own(server: ScriptedServer) -> None:
    server.script(reply(ok(b"one")), reply(CHUNKED + b"6\r\nstream\r\n0\r\n\r\n"), reply(ok(b"three")))
    with closing(server.transport()) as transport:
        assert transport.request("GET", "/one").content == b"one"
        assert b"".join(transport.request("GET", "/stream", stream=True).iter_bytes()) == b"stream"
        assert server.hangups.get(timeout=WAIT) == 2
        assert transport.request("GET", "/three").content == b"three"
    assert server.connections == [1, 2, 1]


def test_an_abandoned_stream_closes_its_connection(server: ScriptedServer) -> None:
    server.script(reply(CHUNKED + b"5\r\nhello\r\n"))  # and nothing more: the server waits
    with closing(server.transport()) as transport:
        pieces = transport.request("GET", "/stream", stream=True).iter_bytes()
        assert next(pieces) == b"hello"
        pieces.close()
        assert server.hangups.get(timeout=WAIT) == 1


def test_a_refused_stream_is_read_whole_and_its_connection_closed(server: ScriptedServer) -> None:
    refusal = b'{"error": {"code": "job_not_found"}}'
    server.script(reply(ok(refusal, status="404 Not Found")), reply(ok(b"next")))
    with closing(server.transport()) as transport:
        response = transport.request("GET", "/v1/jobs/x/logs", stream=True)
        assert (response.status_code, response.content) == (404, refusal)
        assert server.hangups.get(timeout=WAIT) == 1
        assert transport.request("GET", "/v1/info").content == b"next"
    assert server.connections == [1, 2]


# -- stale connections -----------------------------------------------------------------------------


def _resend_after_the_server_closed_the_idle_connection(server: ScriptedServer, reset: bool) -> None:
    after: queue.Queue[None] = queue.Queue()
    server.script(reply_and_close(ok(b"one"), after=after, reset=reset), reply(ok(b"two")))
    with closing(server.transport()) as transport:
        assert transport.request("GET", "/one").content == b"one"
        after.put(None)
        assert server.closed.get(timeout=WAIT) == 1  # closed while idle, before the next request
        assert transport.request("POST", "/two", json_body={"n": 2}).content == b"two"
    assert server.lines == [(1, "GET /one HTTP/1.1"), (2, "POST /two HTTP/1.1")]
    assert server.requests[1].body == b'{"n": 2}'


def test_a_kept_alive_connection_the_server_closed_is_replaced_and_the_request_sent_again(server: ScriptedServer) -> None:
    _resend_after_the_server_closed_the_idle_connection(server, reset=False)


def test_a_kept_alive_connection_the_server_reset_is_replaced_and_the_request_sent_again(tcp_server: ScriptedServer) -> None:
    _resend_after_the_server_closed_the_idle_connection(tcp_server, reset=True)


def test_a_request_is_sent_again_once_only(server: ScriptedServer) -> None:
    after: queue.Queue[None] = queue.Queue()
    server.script(reply_and_close(ok(b"one"), after=after), hang_up())
    with closing(server.transport()) as transport:
        assert transport.request("GET", "/one").content == b"one"
        after.put(None)
        assert server.closed.get(timeout=WAIT) == 1
        with pytest.raises(TransportError, match=r"^the daemon closed the connection without answering$"):
            transport.request("GET", "/two")
    assert server.lines == [(1, "GET /one HTTP/1.1"), (2, "GET /two HTTP/1.1")]


def test_a_fresh_connection_closed_without_an_answer_is_an_error(server: ScriptedServer) -> None:
    server.script(hang_up())
    with (
        closing(server.transport()) as transport,
        pytest.raises(TransportError, match=r"^the daemon closed the connection without answering$"),
    ):
        transport.request("GET", "/v1/info")
    assert server.connections == [1]


# -- broken answers --------------------------------------------------------------------------------

CUT_SHORT = {
    "content-length": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf",
    "content-length-empty": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
    "inside-a-chunk": CHUNKED + b"5\r\nhel",
    "inside-a-chunk-size": CHUNKED + b"5\r\nhello\r\n1",
    "before-the-last-chunk": CHUNKED + b"5\r\nhello\r\n",
}


@pytest.mark.parametrize("answer", CUT_SHORT.values(), ids=CUT_SHORT.keys())
def test_a_body_cut_short_is_an_error(server: ScriptedServer, answer: bytes) -> None:
    server.script(reply_and_close(answer))
    with closing(server.transport()) as transport, pytest.raises(TransportError, match="closed in the middle of a response"):
        transport.request("GET", "/v1/jobs")


@pytest.mark.parametrize("answer", CUT_SHORT.values(), ids=CUT_SHORT.keys())
def test_a_stream_cut_short_is_an_error(server: ScriptedServer, answer: bytes) -> None:
    server.script(reply_and_close(answer))
    with closing(server.transport()) as transport:
        pieces = transport.request("GET", "/v1/jobs/j/logs", stream=True).iter_bytes()
        with pytest.raises(TransportError, match="closed in the middle of a response"):
            b"".join(pieces)


def test_a_head_cut_short_is_an_error(server: ScriptedServer) -> None:
    server.script(reply_and_close(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"))
    with closing(server.transport()) as transport, pytest.raises(TransportError, match="closed in the middle of a response"):
        transport.request("GET", "/v1/jobs")


NOT_HTTP = {
    "ssh": b"SSH-2.0-OpenSSH_9.6\r\n",
    "text": b"hello\r\n\r\n",
    "no-status": b"HTTP/1.1 OK\r\n\r\n",
    "bad-status": b"HTTP/1.1 2x0 Fine\r\n\r\n",
    "bad-length": b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
    "bad-chunk-size": CHUNKED + b"zz\r\nhello\r\n0\r\n\r\n",
    "negative-chunk-size": CHUNKED + b"-1\r\nhello\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("answer", NOT_HTTP.values(), ids=NOT_HTTP.keys())
def test_an_answer_that_is_not_http_is_an_error_and_its_connection_is_closed(server: ScriptedServer, answer: bytes) -> None:
    server.script(reply(answer))  # the server keeps the connection open
    with closing(server.transport()) as transport:
        with pytest.raises(TransportError, match=r"^not an HTTP response"):
            transport.request("GET", "/v1/info")
        assert server.hangups.get(timeout=WAIT) == 1


# -- what the client sends -------------------------------------------------------------------------


def test_the_request_head_is_exact(unix_server: ScriptedServer) -> None:
    unix_server.script(reply(ok(b"{}")))
    with closing(unix_server.transport()) as transport:
        transport.request("GET", "/v1/jobs", params={"limit": 2})
    assert unix_server.requests[0].head == b"GET /v1/jobs?limit=2 HTTP/1.1\r\nHost: tao\r\nContent-Length: 0\r\n\r\n"
    assert unix_server.requests[0].body == b""


def test_params_are_url_encoded_with_repeated_keys(server: ScriptedServer) -> None:
    server.script(reply(ok(b"{}")), reply(ok(b"{}")))
    with closing(server.transport()) as transport:
        transport.request("GET", "/v1/jobs", params={"status": ["queued", "running"], "q": "a b&c/é", "verbose": False})
        transport.request("GET", "/v1/jobs", params={})
    assert [request.line for request in server.requests] == [
        "GET /v1/jobs?status=queued&status=running&q=a+b%26c%2F%C3%A9&verbose=False HTTP/1.1",
        "GET /v1/jobs HTTP/1.1",
    ]


def test_a_json_body_goes_with_its_length_and_type(server: ScriptedServer) -> None:
    body = {"task": "ssd", "args": ["-e", "spec ü.txt"], "gpus": None}
    server.script(reply(ok(b"{}")))
    with closing(server.transport()) as transport:
        transport.request("POST", "/v1/jobs", json_body=body)
    seen = server.requests[0]
    assert seen.line == "POST /v1/jobs HTTP/1.1"
    assert json.loads(seen.body) == body
    assert seen.headers["Content-Length"] == str(len(seen.body))
    assert seen.headers["Content-Type"] == "application/json"


def test_a_request_without_a_body_says_so(server: ScriptedServer) -> None:
    server.script(reply(ok(b"{}")))
    with closing(server.transport()) as transport:
        transport.request("POST", "/v1/jobs/j/cancel")
    assert server.requests[0].headers["Content-Length"] == "0"
    assert "Content-Type" not in server.requests[0].headers


def test_the_host_header_names_the_tcp_address(tcp_server: ScriptedServer) -> None:
    tcp_server.script(reply(ok(b"{}")))
    with closing(tcp_server.transport()) as transport:
        transport.request("GET", "/v1/info")
    assert tcp_server.requests[0].headers["Host"] == tcp_server.base_url.removeprefix("http://")


def test_a_path_in_the_base_url_prefixes_every_target(tcp_server: ScriptedServer) -> None:
    tcp_server.script(reply(ok(b"{}")))
    with closing(tcp_server.transport(base_url=f"{tcp_server.base_url}/tao/")) as transport:
        transport.request("GET", "/v1/info", params={"verbose": True})
    assert tcp_server.requests[0].line == "GET /tao/v1/info?verbose=True HTTP/1.1"

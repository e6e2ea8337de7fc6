"""A small HTTP/1.1 client over the standard library, for Unix sockets and TCP.

The `tao` command pays for every import on every start; the standard library's http.client
answers a request in a few milliseconds of start-up, where a general-purpose HTTP stack costs
about a hundred. One idle connection is kept for reuse; streams get a connection of their own.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

STREAM_CHUNK = 256 * 1024
# The server may close an idle kept-alive connection just as a request goes out on it.
_STALE_CONNECTION = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class TransportError(Exception):
    """Nothing answered, or the connection broke: the daemon is unreachable."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("tao", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Response:
    def __init__(self, raw: http.client.HTTPResponse, connection: http.client.HTTPConnection, method: str, path: str) -> None:
        self._raw = raw
        self._connection = connection
        self.status_code = raw.status
        self.request = f"{method} {path}"
        self.content = b""

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def iter_bytes(self) -> Iterator[bytes]:
        """The body as it arrives, in pieces of whatever size the server sent."""
        try:
            while chunk := self._raw.read1(STREAM_CHUNK):
                yield chunk
        except (OSError, http.client.HTTPException) as exc:
            raise TransportError(f"the connection broke while reading: {exc}") from None
        finally:
            self.close()

    def close(self) -> None:
        self._raw.close()
        self._connection.close()


class Transport:
    def __init__(self, base_url: str, socket_path: str | None, timeout: float) -> None:
        self._socket_path = socket_path
        self._timeout = timeout
        split = urlsplit(base_url)
        self._https = split.scheme == "https"
        self._netloc = split.netloc
        self._prefix = split.path.rstrip("/")
        self._idle: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._idle is not None:
            self._idle.close()
            self._idle = None

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        stream: bool = False,
        timeout: float | None = -1.0,
    ) -> Response:
        """Send one request; the body is read in full unless `stream`. timeout=None waits forever."""
        target = self._prefix + path + (f"?{urlencode(params, doseq=True)}" if params else "")
        body = None if json_body is None else json.dumps(json_body).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection: http.client.HTTPConnection
        reused = self._idle is not None and not stream
        if reused:
            connection, self._idle = self._idle, None  # type: ignore[assignment]
        else:
            connection = self._new(self._timeout if timeout == -1.0 else timeout)
        try:
            raw = self._send(connection, method, target, body, headers)
        except _STALE_CONNECTION:
            connection.close()
            if not reused:
                raise TransportError("the daemon closed the connection") from None
            connection = self._new(self._timeout)
            raw = self._send(connection, method, target, body, headers)
        response = Response(raw, connection, method, path)
        if stream and response.is_success:
            return response
        try:
            response.content = raw.read()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise TransportError(f"the connection broke while reading: {exc}") from None
        if stream or raw.will_close:
            connection.close()
        else:
            self._idle = connection
        return response

    def _send(self, connection: http.client.HTTPConnection, method: str, target: str, body: bytes | None, headers: dict[str, str]) -> http.client.HTTPResponse:
        try:
            connection.request(method, target, body=body, headers=headers)
            return connection.getresponse()
        except _STALE_CONNECTION:
            raise
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise TransportError(_describe(exc)) from None

    def _new(self, timeout: float | None) -> http.client.HTTPConnection:
        if self._socket_path is not None:
            return _UnixConnection(self._socket_path, timeout)
        if self._https:
            return http.client.HTTPSConnection(self._netloc, timeout=timeout)
        return http.client.HTTPConnection(self._netloc, timeout=timeout)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (FileNotFoundError, ConnectionRefusedError)):
        return "nothing answers there"
    if isinstance(exc, socket.timeout):
        return "no answer in time"
    return str(exc) or type(exc).__name__

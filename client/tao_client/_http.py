"""A small HTTP/1.1 client on plain sockets, for the daemon's Unix socket and TCP.

`tao` pays for every import on every start. http.client alone costs about 20 ms (it pulls in
ssl and the email package); the few requests the CLI makes need far less: a request line,
JSON bodies, and Content-Length, chunked or close-delimited responses, read whole or as a stream.
One idle connection is kept for reuse; streams get a connection of their own.
"""

from __future__ import annotations

import json
import socket
from urllib.parse import urlencode, urlsplit

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from collections.abc import Generator, Mapping
    from io import BufferedReader
    from typing import Any

STREAM_CHUNK = 256 * 1024
_NO_TIMEOUT_GIVEN = -1.0
_NO_BODY_STATUSES = (204, 304)  # their answers end with the head, whatever the headers say (RFC 9112, 6.3)
_CUT_SHORT = "the connection closed in the middle of a response"
NOTHING_ANSWERS = "nothing answers there"


class TransportError(Exception):
    """Nothing answered, or the connection broke: the daemon is unreachable."""


class _StaleConnection(Exception):
    """A kept-alive connection the server had already closed; the request never arrived."""


class _Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class Response:
    def __init__(self, connection: _Connection, method: str, path: str) -> None:
        self._connection = connection
        self.request = f"{method} {path}"
        self.status_code, self.headers = _read_head(connection.reader)
        self.content = b""
        bodyless = self.status_code in _NO_BODY_STATUSES
        self._length = 0 if bodyless else _content_length(self.headers)
        self._chunked = not bodyless and self.headers.get("transfer-encoding", "").lower() == "chunked"
        self.reusable = self.headers.get("connection", "").lower() != "close" and (self._chunked or self._length is not None)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def read(self) -> bytes:
        self.content = b"".join(self.iter_bytes(close=False))
        return self.content

    def iter_bytes(self, close: bool = True) -> Generator[bytes, None, None]:
        """The body as it arrives: chunk by chunk when chunked, else in pieces of up to STREAM_CHUNK."""
        reader = self._connection.reader
        try:
            if self._chunked:
                while True:
                    line = reader.readline()
                    if not line:
                        raise TransportError(_CUT_SHORT)
                    size = _chunk_size(line)
                    if size == 0:
                        while reader.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return
                    chunk = reader.read(size)
                    reader.readline()
                    if len(chunk) < size:
                        raise TransportError(_CUT_SHORT)
                    yield chunk
            elif self._length is not None:
                remaining = self._length
                while remaining:
                    # read1: what has arrived, without waiting for a whole STREAM_CHUNK.
                    chunk = reader.read1(min(remaining, STREAM_CHUNK))
                    if not chunk:
                        raise TransportError(_CUT_SHORT)
                    remaining -= len(chunk)
                    yield chunk
            else:
                while chunk := reader.read1(STREAM_CHUNK):
                    yield chunk
        except OSError as exc:
            raise TransportError(f"the connection broke while reading: {exc}") from None
        finally:
            if close:
                self.close()

    def close(self) -> None:
        self._connection.close()


class Transport:
    def __init__(
        self, base_url: str, socket_path: str | None, timeout: float, token: str | None = None, ca_cert: str | None = None
    ) -> None:
        self._socket_path = socket_path
        # Only TCP needs a token: on the Unix socket the kernel tells the daemon who is calling.
        self._authorization = f"Authorization: Bearer {token}\r\n" if token and socket_path is None else ""
        self._ca_cert = ca_cert
        self._timeout = timeout
        split = urlsplit(base_url)
        self._https = split.scheme == "https"
        self._host = split.hostname or "localhost"
        self._port = split.port or (443 if self._https else 80)
        self._host_header = split.netloc or "tao"
        self._prefix = split.path.rstrip("/")
        self._idle: _Connection | None = None

    def close(self) -> None:
        if self._idle is not None:
            self._idle.close()
            self._idle = None

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        stream: bool = False,
        timeout: float | None = _NO_TIMEOUT_GIVEN,
    ) -> Response:
        """Send one request; the body is read in full unless `stream`. timeout=None waits forever."""
        target = self._prefix + path + (f"?{urlencode(params, doseq=True)}" if params else "")
        body = b"" if json_body is None else json.dumps(json_body).encode()
        head = f"{method} {target} HTTP/1.1\r\nHost: {self._host_header}\r\nContent-Length: {len(body)}\r\n{self._authorization}"
        if json_body is not None:
            head += "Content-Type: application/json\r\n"
        message = head.encode() + b"\r\n" + body
        wait = self._timeout if timeout == _NO_TIMEOUT_GIVEN else timeout
        if self._idle is not None and not stream:
            connection, self._idle = self._idle, None
            try:
                return self._exchange(connection, message, method, path, stream, wait, reused=True)
            except _StaleConnection:
                pass  # the server had closed it while idle: the request never arrived, send it again
        return self._exchange(self._connect(wait), message, method, path, stream, wait, reused=False)

    def websocket(self, path: str, params: Mapping[str, Any] | None = None) -> tuple[int, dict[str, str], Any]:
        """Open a websocket at `path`: (101, headers, WebSocket), or (status, headers, body bytes) when refused."""
        from tao_client._websocket import WebSocket, handshake_request

        target = self._prefix + path + (f"?{urlencode(params, doseq=True)}" if params else "")
        request, accept = handshake_request(target, self._host_header, self._authorization)
        sock = self._open_stream(self._timeout)
        try:
            sock.sendall(request)
            head, rest = _read_raw_head(sock)
            status, headers = _read_head(_BytesReader(head))
            if status != 101:
                body = rest
                length = _content_length(headers) or 0
                while len(body) < length and (more := sock.recv(65536)):
                    body += more
                sock.close()
                return status, headers, body
            if headers.get("sec-websocket-accept", "").encode() != accept:
                raise TransportError("the daemon's websocket answer does not match the request")
        except OSError as exc:
            sock.close()
            raise TransportError(_describe(exc)) from None
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        return status, headers, WebSocket(sock, rest)

    def _open_stream(self, wait: float | None) -> Any:
        """A connection for a websocket: a socket, or over https a TlsStream (TLS in memory, so that
        one thread may read while another writes, which an SSLSocket does not allow)."""
        if not self._https:
            return self._connect(wait).sock
        import ssl

        from tao_client._websocket import TlsStream

        try:
            raw = socket.create_connection((self._host, self._port), timeout=wait)
        except OSError as exc:
            raise TransportError(_describe(exc)) from None
        try:
            return TlsStream(raw, ssl.create_default_context(cafile=self._ca_cert), self._host)
        except (OSError, ssl.SSLError) as exc:
            raw.close()
            raise TransportError(_describe(exc)) from None

    def receive_descriptor(self, path: str) -> tuple[int, dict[str, str], Any]:
        """POST `path` on the Unix socket and take the file descriptor the daemon hands over ahead of its
        answer: (204, headers, socket), or (status, headers, body bytes) when it refused."""
        connection = self._connect(self._timeout)
        sock = connection.sock
        try:
            sock.sendall(f"POST {self._prefix}{path} HTTP/1.1\r\nHost: {self._host_header}\r\nContent-Length: 0\r\n\r\n".encode())
            first, descriptors, _flags, _address = socket.recv_fds(sock, 1, 1)
            handed = socket.socket(fileno=descriptors[0]) if descriptors else None
            head, rest = _read_raw_head(sock)
            if handed is None:
                head = first + head  # no descriptor: that byte began the answer
            status, headers = _read_head(_BytesReader(head))
            body = rest
            length = _content_length(headers) or 0
            while len(body) < length and (more := sock.recv(65536)):
                body += more
        except OSError as exc:
            raise TransportError(_describe(exc)) from None
        finally:
            connection.close()
        if handed is not None and status == 204:
            return status, headers, handed
        if handed is not None:
            handed.close()
        return status, headers, body

    def _exchange(
        self, connection: _Connection, message: bytes, method: str, path: str, stream: bool, wait: float | None, reused: bool
    ) -> Response:
        try:
            response = self._start(connection, message, method, path, wait, reused)
            if stream and response.is_success:
                return response  # its reader owns the connection now, and closes it
            response.read()
        except BaseException:
            connection.close()  # a connection left in the middle of an exchange is never reused
            raise
        if response.reusable and not stream:
            self._idle = connection
        else:
            connection.close()
        return response

    def _start(self, connection: _Connection, message: bytes, method: str, path: str, wait: float | None, reused: bool) -> Response:
        """Send the request and read the head of the answer."""
        try:
            connection.sock.settimeout(wait)
            connection.sock.sendall(message)
            return Response(connection, method, path)
        except (_StaleConnection, BrokenPipeError, ConnectionResetError) as exc:
            if reused:
                raise _StaleConnection from None
            raise TransportError(
                _describe(exc) if isinstance(exc, OSError) else "the daemon closed the connection without answering"
            ) from None
        except OSError as exc:
            raise TransportError(_describe(exc)) from None

    def _connect(self, wait: float | None) -> _Connection:
        try:
            if self._socket_path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(wait)
                sock.connect(self._socket_path)
            else:
                sock = socket.create_connection((self._host, self._port), timeout=wait)
                if self._https:
                    import ssl

                    sock = ssl.create_default_context(cafile=self._ca_cert).wrap_socket(sock, server_hostname=self._host)
        except OSError as exc:
            raise TransportError(_describe(exc)) from None
        return _Connection(sock)


def _read_raw_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """(the response's head, the bytes after it) read straight off the socket, buffering nothing elsewhere."""
    data = b""
    while (end := data.find(b"\r\n\r\n")) < 0:
        if len(data) > 65536:
            raise TransportError("the daemon's answer has no end of its head")
        more = sock.recv(65536)
        if not more:
            raise TransportError(_CUT_SHORT)
        data += more
    return data[: end + 4], data[end + 4 :]


class _BytesReader:
    """readline() over bytes in hand, for _read_head."""

    def __init__(self, data: bytes) -> None:
        self._lines = data.splitlines(keepends=True)

    def readline(self, _limit: int = -1) -> bytes:
        return self._lines.pop(0) if self._lines else b""


def _read_head(reader: BufferedReader | _BytesReader) -> tuple[int, dict[str, str]]:
    status_line = reader.readline(65537)
    if not status_line:
        raise _StaleConnection
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not (len(parts[1]) == 3 and parts[1].isdigit()):
        raise TransportError(f"not an HTTP response: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    while (line := reader.readline(65537)) not in (b"\r\n", b"\n"):
        if not line:
            raise TransportError(_CUT_SHORT)
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def _content_length(headers: dict[str, str]) -> int | None:
    if "content-length" not in headers:
        return None
    value = headers["content-length"]
    if not value.isdigit():
        raise TransportError(f"not an HTTP response: Content-Length {value[:80]!r}")
    return int(value)


def _chunk_size(line: bytes) -> int:
    """The size on a chunk's first line, in hex; extensions (`;name=value`) are ignored."""
    digits = line.split(b";", 1)[0].strip()
    if not digits or digits.strip(b"0123456789abcdefABCDEF"):
        raise TransportError(f"not an HTTP response: chunk size {line[:80]!r}")
    return int(digits, 16)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (FileNotFoundError, ConnectionRefusedError)):
        return NOTHING_ANSWERS
    if isinstance(exc, PermissionError):
        return "permission denied: the socket admits its owner and, on a shared box, its group; ask to be added to that group"
    if type(exc).__name__ == "SSLCertVerificationError":
        return f"{exc}; set TAO_CA_CERT to the CA bundle that signed the daemon's certificate"
    if isinstance(exc, socket.timeout):
        return "no answer in time"
    return str(exc) or type(exc).__name__

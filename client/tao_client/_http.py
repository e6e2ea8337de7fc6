"""A small HTTP/1.1 client on plain sockets, for the daemon's Unix socket and TCP.

`tao` pays for every import on every start. http.client alone costs about 20 ms (it pulls in
ssl and the email package); the few requests the CLI makes need far less: a request line,
JSON bodies, and Content-Length or chunked responses, read whole or as a stream.
One idle connection is kept for reuse; streams get a connection of their own.
"""

from __future__ import annotations

import json
import socket
from urllib.parse import urlencode, urlsplit

STREAM_CHUNK = 256 * 1024
_NO_TIMEOUT_GIVEN = -1.0


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
        self._length = int(self.headers["content-length"]) if "content-length" in self.headers else None
        self._chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self.reusable = self.headers.get("connection", "").lower() != "close" and (self._chunked or self._length is not None)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def json(self): # type: ignore[no-untyped-def]
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def read(self) -> bytes:
        self.content = b"".join(self.iter_bytes(close=False))
        return self.content

    def iter_bytes(self, close: bool = True):  # type: ignore[no-untyped-def]
        """The body as it arrives: chunk by chunk when chunked, else in pieces of up to STREAM_CHUNK."""
        reader = self._connection.reader
        try:
            if self._chunked:
                while True:
                    line = reader.readline()
                    if not line:
                        raise TransportError("the connection closed in the middle of a response")
                    size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while reader.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return
                    chunk = reader.read(size)
                    reader.readline()
                    if len(chunk) < size:
                        raise TransportError("the connection closed in the middle of a response")
                    yield chunk
            elif self._length is not None:
                remaining = self._length
                while remaining:
                    chunk = reader.read(min(remaining, STREAM_CHUNK))
                    if not chunk:
                        raise TransportError("the connection closed in the middle of a response")
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
    def __init__(self, base_url: str, socket_path: str | None, timeout: float, token: str | None = None, ca_cert: str | None = None) -> None:
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

    def request(self, method: str, path: str, *, params=None, json_body=None, stream: bool = False, timeout=_NO_TIMEOUT_GIVEN) -> Response:  # type: ignore[no-untyped-def]
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

    def _exchange(self, connection: _Connection, message: bytes, method: str, path: str, stream: bool, wait: float | None, reused: bool) -> Response:
        try:
            connection.sock.settimeout(wait)
            connection.sock.sendall(message)
            response = Response(connection, method, path)
        except (_StaleConnection, BrokenPipeError, ConnectionResetError) as exc:
            connection.close()
            if reused:
                raise _StaleConnection from None
            raise TransportError(_describe(exc) if isinstance(exc, OSError) else "the daemon closed the connection without answering") from None
        except OSError as exc:
            connection.close()
            raise TransportError(_describe(exc)) from None
        if stream and response.is_success:
            return response
        response.read()
        if response.reusable and not stream:
            self._idle = connection
        else:
            connection.close()
        return response

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


def _read_head(reader) -> tuple[int, dict[str, str]]:  # type: ignore[no-untyped-def]
    status_line = reader.readline(65537)
    if not status_line:
        raise _StaleConnection
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise TransportError(f"not an HTTP response: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    while (line := reader.readline(65537)) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (FileNotFoundError, ConnectionRefusedError)):
        return "nothing answers there"
    if isinstance(exc, PermissionError):
        return "permission denied: the socket admits its owner and, on a shared box, its group; ask to be added to that group"
    if type(exc).__name__ == "SSLCertVerificationError":
        return f"{exc}; set TAO_CA_CERT to the CA bundle that signed the daemon's certificate"
    if isinstance(exc, socket.timeout):
        return "no answer in time"
    return str(exc) or type(exc).__name__

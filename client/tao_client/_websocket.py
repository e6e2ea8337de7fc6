"""A websocket client (RFC 6455) on plain sockets, for a job's terminal and port-forwards.

The CLI's transport stays on the standard library (start-up time): this adds what a websocket
needs on top of `_http.Transport`'s connection: the upgrade, frames in both directions (masked
from the client, as the RFC requires), answering pings, and the close handshake. Reads go
through one buffer of its own, so a caller may wait on `fileno()` with select(): `pending()`
says whether a frame's bytes are already here (in this buffer, or inside a TLS record).
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import threading

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    import ssl

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA
_RECV_SIZE = 1024 * 1024


class Closed(Exception):
    """The server closed the websocket (or the connection broke: code 1006)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"websocket closed ({code}{': ' + reason if reason else ''})")
        self.code = code
        self.reason = reason


class WebSocket:
    """One open websocket. Sends are safe from several threads; receive from one thread at a time."""

    def __init__(self, sock: socket.socket | TlsStream, buffered: bytes = b"") -> None:
        self._sock = sock
        self._buffer = bytearray(buffered)
        self._send_lock = threading.Lock()
        self.closed = False

    def fileno(self) -> int:
        return self._sock.fileno()

    def pending(self) -> bool:
        """Bytes are here to read without waiting on the socket."""
        return bool(self._buffer) or (isinstance(self._sock, TlsStream) and self._sock.pending())

    # -- sending --------------------------------------------------------------------------------

    def send_binary(self, data: bytes | bytearray) -> None:
        self._send(BINARY, data)

    def send_text(self, text: str) -> None:
        self._send(TEXT, text.encode())

    def close(self, code: int = 1000) -> None:
        """Start the close handshake and let go of the connection."""
        if not self.closed:
            try:
                self._send(CLOSE, struct.pack("!H", code))
            except OSError:
                pass
            self.closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    def _send(self, opcode: int, payload: bytes | bytearray) -> None:
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
        elif size < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
        frame = head + mask + _masked(payload, mask)
        with self._send_lock:
            self._sock.sendall(frame)

    # -- receiving ------------------------------------------------------------------------------

    def receive(self) -> tuple[int, bytes | bytearray]:
        """The next message as (TEXT or BINARY, payload); answers pings on the way. Closed at the end."""
        message = bytearray()
        message_opcode = 0
        while True:
            first, second = self._read(2)
            opcode, size = first & 0x0F, second & 0x7F
            if size == 126:
                size = struct.unpack("!H", self._read(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if second & 0x80 else b""
            payload = self._read(size)
            if mask:
                payload = _masked(bytes(payload), mask)
            if opcode == PING:
                self._send(PONG, payload)
            elif opcode == CLOSE:
                self._closed_by_server(payload)
            elif opcode != PONG:
                if opcode:  # a new message; 0 continues the one being read
                    message_opcode = opcode
                if first & 0x80 and not message:  # a whole message in one frame, as the daemon sends them
                    return message_opcode, bytes(payload) if opcode == TEXT else payload
                message += payload
                if first & 0x80:  # FIN
                    return message_opcode, bytes(message)

    def _closed_by_server(self, payload: bytes | bytearray) -> None:
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        if not self.closed:
            try:
                self._send(CLOSE, payload[:2])
            except OSError:
                pass
            self.closed = True
        raise Closed(code, payload[2:].decode("utf-8", errors="replace"))

    def _read(self, size: int) -> bytes | bytearray:
        """Exactly `size` bytes. A large payload is read straight into its own buffer: one copy, not three."""
        if len(self._buffer) >= size:
            data = bytes(self._buffer[:size])
            del self._buffer[:size]
            return data
        if size < _RECV_SIZE // 4:
            while len(self._buffer) < size:
                self._buffer += self._recv(_RECV_SIZE)
            return self._read(size)
        out = bytearray(size)
        view = memoryview(out)
        filled = len(self._buffer)
        view[:filled] = self._buffer
        self._buffer.clear()
        while filled < size:
            try:
                count = self._sock.recv_into(view[filled:])
            except OSError as exc:
                raise Closed(1006, str(exc)) from None
            if not count:
                raise Closed(1006, "the connection closed")
            filled += count
        return out

    def _recv(self, size: int) -> bytes:
        try:
            data = self._sock.recv(size)
        except OSError as exc:
            raise Closed(1006, str(exc)) from None
        if not data:
            raise Closed(1006, "the connection closed")
        return data


def _masked(payload: bytes | bytearray, mask: bytes | bytearray) -> bytes:
    """`payload` XOR the 4-byte `mask` repeated: one big-integer XOR, far faster than a loop over bytes."""
    if not payload:
        return b""
    size = len(payload)
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(size, "little")


class TlsStream:
    """TLS over a socket through memory buffers (ssl.MemoryBIO): one thread may read while another writes.

    An SSLSocket forbids that (OpenSSL's objects are not thread-safe), and a port-forward's two
    directions must not wait on each other. Here the TLS object is touched only under a lock and
    never blocks; the socket is read and written outside it. Records leave in the order they were
    made: making and sending them happen under one send lock.
    """

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server_hostname: str) -> None:
        import ssl  # here, not at the top: a session on the Unix socket never pays for it

        self._ssl = ssl
        self._sock = sock
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname=server_hostname)
        self._lock = threading.Lock()  # the TLS object and its buffers
        self._send_lock = threading.Lock()  # making records and putting them on the wire, in order
        while True:
            try:
                with self._lock:
                    self._tls.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                if not self._feed():
                    raise ConnectionError("the TLS handshake was cut short") from None

    def fileno(self) -> int:
        return self._sock.fileno()

    def settimeout(self, value: float | None) -> None:
        self._sock.settimeout(value)

    def pending(self) -> bool:
        with self._lock:
            return self._tls.pending() > 0 or self._incoming.pending > 0

    def sendall(self, data: bytes | bytearray) -> None:
        with self._send_lock:
            with self._lock:
                self._tls.write(data)
                records = self._outgoing.read()
            self._sock.sendall(records)

    def recv(self, size: int) -> bytes:
        while True:
            with self._lock:
                try:
                    data: bytes | None = self._tls.read(size)
                except self._ssl.SSLWantReadError:
                    data = None
                except self._ssl.SSLZeroReturnError:
                    data = b""
                produced = self._outgoing.pending > 0  # a reply the protocol owes (a key update)
            if produced:
                self._flush()
            if data is not None:
                return data
            if not self._feed():
                return b""

    def recv_into(self, view: memoryview) -> int:
        data = self.recv(len(view))
        view[: len(data)] = data
        return len(data)

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)

    def close(self) -> None:
        self._sock.close()

    def _feed(self) -> bool:
        """Read what the socket has into the TLS object; False at the connection's end."""
        data = self._sock.recv(_RECV_SIZE)
        if not data:
            return False
        with self._lock:
            self._incoming.write(data)
        return True

    def _flush(self) -> None:
        with self._send_lock:
            with self._lock:
                records = self._outgoing.read()
            if records:
                self._sock.sendall(records)


def handshake_request(target: str, host: str, extra_headers: str) -> tuple[bytes, bytes]:
    """The upgrade request for `target`, and the Sec-WebSocket-Accept the server must answer."""
    key = base64.b64encode(os.urandom(16))
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n{extra_headers}\r\n"
    )
    return request.encode(), accept

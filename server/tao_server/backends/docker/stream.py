"""A container's output as plain bytes: Docker's multiplexed attach stream, and skipping to an offset."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tao_server.backends.entrypoint import HEAD_SIZE

READ_SIZE = 256 * 1024


class AttachedStream:
    """Payloads of Docker's multiplexed stream (8-byte header: stream, 0, 0, 0, big-endian size), batched per read.

    The attach stream carries each write() of the task as one frame, where the logs endpoint
    replays line by line from the engine's log file: far fewer frames for a chatty task.
    """

    def __init__(self, sock: Any, tty: bool) -> None:
        self._sock = sock  # the socket-like object docker-py's attach_socket returns
        self._tty = tty

    def close(self) -> None:
        # docker-py hangs the attach request's response on the socket it returns, so that it is not
        # collected; the socket object alone does not own the connection. Closing the response does,
        # at once, instead of whenever the collector finds the cycle between them.
        response = getattr(self._sock, "_response", None)
        if response is not None:
            response.close()
        self._sock.close()

    def __iter__(self) -> Iterator[bytes]:
        buffer = bytearray()
        try:
            while data := self._sock.read(READ_SIZE):
                if self._tty:  # a TTY container's stream is raw bytes
                    yield data
                    continue
                buffer += data
                payloads, consumed = [], 0
                while len(buffer) - consumed >= 8:
                    size = int.from_bytes(buffer[consumed + 4 : consumed + 8], "big")
                    if len(buffer) - consumed - 8 < size:
                        break
                    payloads.append(bytes(buffer[consumed + 8 : consumed + 8 + size]))
                    consumed += 8 + size
                del buffer[:consumed]
                if payloads:
                    yield b"".join(payloads)
        finally:
            self.close()


class Output:
    """A run's output from byte `offset`, out of `chunks`, which start at the output's first byte.

    Fills `head` with the output's first HEAD_SIZE bytes as they pass, by their place in the
    output: so the run can tell an entrypoint the init could not exec, however often it is read.
    """

    def __init__(self, chunks: Iterator[bytes], offset: int, close: Callable[[], None], head: bytearray) -> None:
        self._chunks = chunks
        self._offset = offset
        self._close = close
        self._head = head

    def close(self) -> None:
        self._close()

    def __iter__(self) -> Iterator[bytes]:
        return from_byte(self._keeping_head(), self._offset)

    def _keeping_head(self) -> Iterator[bytes]:
        position = 0  # of the chunk's first byte in the whole output
        for chunk in self._chunks:
            if position <= len(self._head) < HEAD_SIZE:
                self._head += chunk[len(self._head) - position : HEAD_SIZE - position]
            position += len(chunk)
            yield chunk


def from_byte(chunks: Iterable[bytes], offset: int) -> Iterator[bytes]:
    """`chunks`, which start at byte 0 of an output, from byte `offset` on; no empty chunk."""
    position = 0
    for chunk in chunks:
        start = max(0, offset - position)
        position += len(chunk)
        if start < len(chunk):
            yield chunk[start:] if start else chunk

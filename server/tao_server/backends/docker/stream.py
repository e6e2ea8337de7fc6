"""A container's output as plain bytes: Docker's multiplexed attach stream, and skipping to an offset."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

READ_SIZE = 256 * 1024
HEAD_SIZE = 4096  # enough for the init's report of an entrypoint it could not exec


class AttachedStream:
    """Payloads of Docker's multiplexed stream (8-byte header: stream, 0, 0, 0, big-endian size), batched per read.

    The attach stream carries each write() of the task as one frame, where the logs endpoint
    replays line by line from the engine's log file: far fewer frames for a chatty task.
    """

    def __init__(self, sock: Any, tty: bool) -> None:
        self._sock = sock  # the socket-like object docker-py's attach_socket returns
        self._tty = tty

    def close(self) -> None:
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
    """A run's output from byte `offset`: the first `offset` bytes of `chunks` are dropped.

    Keeps the first bytes it sees, so the run can tell an entrypoint the init could not exec.
    """

    def __init__(self, chunks: Iterator[bytes], offset: int, close: Any, head: bytearray) -> None:
        self._chunks = chunks
        self._skip = offset
        self._close = close
        self._head = head

    def close(self) -> None:
        self._close()

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if len(self._head) < HEAD_SIZE:
                self._head += chunk[: HEAD_SIZE - len(self._head)]
            if self._skip:
                dropped = min(self._skip, len(chunk))
                chunk, self._skip = chunk[dropped:], self._skip - dropped
                if not chunk:
                    continue
            yield chunk

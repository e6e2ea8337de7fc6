"""An interactive job's terminal, as the SDK gives it: the task's output and its end to read; keys, resizes
and the end of input to send.

It speaks the daemon's websocket (/v1/jobs/{id}/terminal): output in binary frames, control in
JSON text frames (`{"type": "resize", "rows", "cols"}`, `{"type": "eof"}` from here; heartbeats,
the end and refusals from the daemon). `fileno()` and `pending()` let a caller wait with select()
on the terminal and its own input at once, as `tao attach` does; `AsyncClient.terminal()` gives
the same in asyncio (AsyncTerminal).
"""

from __future__ import annotations

import json

from tao_client._errors import ApiError, SessionClosed

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    import asyncio
    from collections.abc import AsyncIterator, Iterator
    from typing import Any

    from tao_client._websocket import WebSocket


class Terminal:
    """One session on a job's terminal; `close()` (or leaving a `with` block) ends it, and the job goes on."""

    def __init__(self, job_id: str, websocket: WebSocket) -> None:
        self.job_id = job_id
        self._websocket = websocket
        # The session's end as the daemon said it: {"type": "end", "status", "exit_code", "error"}; None before.
        self.end: dict[str, Any] | None = None

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        """Keys (or any input) to the task, as typed: Ctrl-C is b"\\x03", which the task's terminal makes a signal."""
        self._websocket.send_binary(data)

    def resize(self, rows: int, cols: int) -> None:
        """The size of the terminal the task draws on."""
        self._websocket.send_text(json.dumps({"type": "resize", "rows": rows, "cols": cols}))

    def end_input(self) -> None:
        """The end of the task's input: it reads EOF (Ctrl-D on a terminal of its own)."""
        self._websocket.send_text('{"type": "eof"}')

    def receive(self) -> bytes | None:
        """The next output the task wrote; b"" for a heartbeat while it is quiet; None once the session has ended (`end`
        says how). SessionClosed when the connection ended without an end; ApiError when the daemon refused the session."""
        from tao_client._websocket import BINARY, Closed

        if self.end is not None:
            return None
        try:
            opcode, payload = self._websocket.receive()
        except Closed as closed:
            raise SessionClosed(closed.code, f"the daemon closed the session ({closed.code})") from None
        if opcode == BINARY:
            return bytes(payload)
        message = json.loads(payload)
        if message.get("type") == "end":
            self.end = message
            return None
        if message.get("type") == "error":
            raise ApiError(
                409, message.get("code", "error"), message.get("message", "the daemon refused the session"), message.get("field")
            )
        return b""  # a heartbeat, or a message of a newer daemon's

    def output(self) -> Iterator[bytes]:
        """The task's output until the session ends."""
        while (chunk := self.receive()) is not None:
            if chunk:
                yield chunk

    def fileno(self) -> int:
        return self._websocket.fileno()

    def pending(self) -> bool:
        """Whether a message is already here to read without waiting on `fileno()`."""
        return self._websocket.pending()

    def close(self) -> None:
        self._websocket.close()


class AsyncTerminal:
    """A Terminal for asyncio: each call runs in a thread of its own, so the event loop never waits on the websocket."""

    def __init__(self, terminal: Terminal) -> None:
        self._terminal = terminal
        self.job_id = terminal.job_id

    @property
    def end(self) -> dict[str, Any] | None:
        return self._terminal.end

    async def __aenter__(self) -> AsyncTerminal:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def send(self, data: bytes) -> None:
        await _in_thread(self._terminal.send, data)

    async def resize(self, rows: int, cols: int) -> None:
        await _in_thread(self._terminal.resize, rows, cols)

    async def end_input(self) -> None:
        await _in_thread(self._terminal.end_input)

    async def receive(self) -> bytes | None:
        """As Terminal.receive: the next output, b"" for a heartbeat, None once the session has ended."""
        return await _in_thread(self._terminal.receive)

    async def output(self) -> AsyncIterator[bytes]:
        while (chunk := await self.receive()) is not None:
            if chunk:
                yield chunk

    async def close(self) -> None:
        await _in_thread(self._terminal.close)


def _in_thread(fn: Any, *args: Any) -> asyncio.Future[Any]:
    import asyncio

    return asyncio.ensure_future(asyncio.to_thread(fn, *args))

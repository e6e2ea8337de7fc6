"""A terminal session's two directions: the job's output out, keys and resizes in.

The output is the job's log, followed from the offset the client asked for, with heartbeats
while it is quiet, then the job's end and a normal close (1012 when the daemon stops first).
The input goes to the run's terminal, opened at the first frame (the run may not have started
yet): keys as bytes, `{"type": "resize", "rows", "cols"}` and `{"type": "eof"}` as control. When
the job ends (or the daemon stops) first, the input closes at once and the output goes on to its end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from tao_server.backends import Terminal
from tao_server.errors import DaemonStopping, TaoError
from tao_server.interactive.channel import SERVICE_RESTART, Channel, stop_tasks
from tao_server.interactive.session_registry import JobSessions, Session
from tao_server.jobs.log_files import Heartbeat
from tao_server.models import Job


async def serve_terminal(
    channel: Channel,
    output: AsyncIterator[bytes | Heartbeat],
    end: Callable[[], dict[str, Any]],
    sessions: JobSessions,
    session: Session,
    job: Job,
) -> None:
    """The output and the input, until the output has ended or the client leaves; `end()` is the job's end message.

    Raises what the input raised (InvalidRequest for a control frame the daemon does not read).
    """
    sending = asyncio.ensure_future(_send_output(channel, output, end))
    copying = asyncio.ensure_future(_copy_input(channel, sessions, session, job))
    ended = asyncio.ensure_future(session.ended.wait())
    try:
        await asyncio.wait({sending, copying, ended}, return_when=asyncio.FIRST_COMPLETED)
        if not sending.done() and not copying.done():
            copying.cancel()
            await asyncio.wait({sending})
    finally:
        failures = await stop_tasks(sending, copying, ended)
    if failures:
        raise failures[0]


async def _send_output(channel: Channel, output: AsyncIterator[bytes | Heartbeat], end: Callable[[], dict[str, Any]]) -> None:
    """The job's output as it is written, heartbeats while it is quiet, then its end and a normal close."""
    try:
        async for item in output:
            if isinstance(item, Heartbeat):
                await channel.send_json({"type": "heartbeat"})
            else:
                await channel.send_bytes(item)
    except DaemonStopping:
        await channel.close(code=SERVICE_RESTART)
        return
    await channel.send_json(end())
    await channel.close()


async def _copy_input(channel: Channel, sessions: JobSessions, session: Session, job: Job) -> None:
    """Keys and resizes into the run's terminal, opened at the first frame; returns when the client leaves.

    A control frame the daemon does not read raises InvalidRequest, whether the input is still usable or not.
    """
    terminal: Terminal | None = None
    usable = True  # False once the run's input is gone: what follows is read and dropped
    try:
        while (frame := await channel.receive()) is not None:
            if not usable:
                continue
            try:
                if terminal is None:
                    terminal = await sessions.open_terminal(job, session)
                    if terminal is None:  # the job ended first
                        usable = False
                        continue
                if isinstance(frame, bytes):
                    await session.call(terminal.write, frame)
                else:
                    await _control(session, terminal, frame)
            except TaoError:  # the run ended, or its engine refused: its output and end say the rest
                usable = False
    finally:
        if terminal is not None:
            terminal.close()  # shuts its socket down: a write blocked on the session's thread wakes


async def _control(session: Session, terminal: Terminal, control: dict[str, Any]) -> None:
    """{"type": "resize", "rows", "cols"} or {"type": "eof"}; any other type is ignored, for clients newer than this daemon."""
    if control.get("type") == "eof":
        await session.call(terminal.end_input)
    elif control.get("type") == "resize" and all(_dimension(control.get(key)) for key in ("rows", "cols")):
        await session.call(terminal.resize, control["rows"], control["cols"])


def _dimension(value: object) -> bool:
    return type(value) is int and 0 < value < 65536

"""A session's websocket as the pumps see it: frames in (bytes, or a control message), frames out, a close.

The API wraps the request's websocket in a Channel (api/websocket_channel.py), which reads each
text frame as a control message, bounded; the pumps here never see the web framework.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

NORMAL = 1000
GOING_AWAY = 1001  # a port's connection, when its job ends
BROKEN = 1011  # the connection to the job's port broke
SERVICE_RESTART = 1012  # the daemon stops: a client follows again once it is back


class ClientLeft(Exception):
    """The client went away while the daemon was sending to it."""


class Channel(Protocol):
    async def receive(self) -> bytes | dict[str, Any] | None:
        """The next frame: bytes, or a control message (a JSON object; {} for JSON that is not one); None once
        the client has left. InvalidRequest for a control frame the daemon does not read."""

    async def send_bytes(self, data: bytes) -> None: ...

    async def send_json(self, message: dict[str, Any]) -> None: ...

    async def close(self, code: int = NORMAL) -> None: ...


async def stop_tasks(*tasks: asyncio.Future[Any]) -> list[BaseException]:
    """Cancel `tasks` and wait for their ends; what they raised, but a cancel or the client's leaving.

    asyncio.wait rather than gather: should this wait be cancelled itself, gather would raise one of
    the tasks' cancellations in place of the caller's own, which the caller could then not tell apart.
    """
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)
    return [
        failure
        for task in tasks
        if not task.cancelled() and (failure := task.exception()) is not None and not isinstance(failure, ClientLeft)
    ]

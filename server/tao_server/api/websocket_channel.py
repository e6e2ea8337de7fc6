"""A session's websocket as the pumps of tao_server.interactive take it (a Channel), and a refusal said on it.

Text frames are control messages: each is read here as JSON, bounded (client_json.py), and a
frame the daemon does not read is an InvalidRequest. A refusal is `{"type": "error", "code",
"message", "field"}` and a close code: 4404 for a job the caller may not see, 4403 for one that
is not theirs, 4409 for one that takes no session, 4429 past a bound on sessions, 4400 for a
control frame the daemon does not read, 4502 when nothing answers on the port.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from tao_server.api import client_json
from tao_server.errors import InvalidRequest, TaoError
from tao_server.interactive.channel import NORMAL, ClientLeft

MAX_CONTROL_BYTES = 4096  # a control frame is a few dozen bytes: {"type": "resize", "rows": 40, "cols": 120}
_CLOSE_CODES = {404: 4404, 403: 4403, 409: 4409, 429: 4429, 502: 4502}


class WebSocketChannel:
    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket

    async def receive(self) -> bytes | dict[str, Any] | None:
        message = await self._websocket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        if (data := message.get("bytes")) is not None:
            return bytes(data)
        text = message.get("text")
        return control_of(text) if text is not None else {}

    async def send_bytes(self, data: bytes) -> None:
        try:
            await self._websocket.send_bytes(data)
        except WebSocketDisconnect:
            raise ClientLeft from None

    async def send_json(self, message: dict[str, Any]) -> None:
        try:
            await self._websocket.send_text(json.dumps(message))
        except WebSocketDisconnect:
            raise ClientLeft from None

    async def close(self, code: int = NORMAL) -> None:
        try:
            await self._websocket.close(code=code)
        except WebSocketDisconnect:
            raise ClientLeft from None


def control_of(text: str) -> dict[str, Any]:
    """A text frame's control message: a JSON object ({} for JSON that is not one, which nothing reads).

    InvalidRequest for a frame the daemon does not read: longer than MAX_CONTROL_BYTES, not JSON, nested too deeply.
    """
    try:
        control = client_json.parse(text, MAX_CONTROL_BYTES)
    except client_json.UnreadableJson as exc:
        raise InvalidRequest(
            f'a control frame the daemon does not read: {exc.message}; control frames are JSON objects such as {{"type": "eof"}}'
        ) from None
    return control if isinstance(control, dict) else {}


async def refuse(websocket: WebSocket, exc: TaoError) -> None:
    """Say why the session is refused, then close with the code that says it (4400 for what has no code of its own)."""
    if websocket.application_state != WebSocketState.CONNECTED:  # closed already: nothing can be said
        return
    try:
        await websocket.send_text(json.dumps({"type": "error", **exc.to_dict()}))
        await websocket.close(code=_CLOSE_CODES.get(exc.http_status, 4400))
    except WebSocketDisconnect:
        pass  # the client left meanwhile

"""/v1/jobs/{id}/terminal: the websocket of an interactive job's terminal (`tao ... -i`, `tao attach`).

The job's output in binary frames, from `offset` (omitted: from now on), heartbeats while it is
quiet, then `{"type": "end", "status", "exit_code", "error"}` and a normal close; keys as binary
frames and `{"type": "resize", "rows", "cols"}`, `{"type": "eof"}` as text frames from the client.
A refusal says why and closes with its code (api/websocket_channel.py). Every session is counted
and ended by interactive/session_registry.py: when its job ends, the input closes at once and the
output goes on to the end; when the daemon stops, the websocket closes with 1012. The protocol is
described in the OpenAPI document's description (api/docs.py), as websockets have no operations there.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, WebSocket

from tao_server.api.deps import CallerDep, ServicesDep
from tao_server.api.logs import MAX_OFFSET, end_message
from tao_server.api.routing import JsonRoute
from tao_server.api.websocket_channel import WebSocketChannel, refuse
from tao_server.errors import InvalidRequest, TaoError
from tao_server.interactive.terminal_io import serve_terminal

router = APIRouter(prefix="/v1/jobs", tags=["sessions"], route_class=JsonRoute)

TerminalOffset = Annotated[int | None, Query(ge=0, le=MAX_OFFSET, description="output from this byte; omitted: from now on")]


@router.websocket("/{job_id}/terminal")
async def terminal(websocket: WebSocket, job_id: str, services: ServicesDep, caller: CallerDep, offset: TerminalOffset = None) -> None:
    await websocket.accept()
    try:
        job = services.sessions.terminal_job(job_id, caller)
        start = services.jobs.log_size(job.id) if offset is None else offset
        output = services.jobs.follow_log(job.id, caller, start, services.settings.heartbeat_interval)
        session = services.sessions.open(job, caller)
    except TaoError as exc:
        await refuse(websocket, exc)
        return
    try:
        end = lambda: end_message(services.jobs.get(job.id, caller))  # noqa: E731  (asked once the output has ended)
        await serve_terminal(WebSocketChannel(websocket), output, end, services.sessions, session, job)
    except InvalidRequest as exc:
        await refuse(websocket, exc)
    finally:
        session.close()

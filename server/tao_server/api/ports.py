"""/v1/jobs/{id}/ports/{port}: connections to a port inside a running job's container (`tao port-forward`).

On the Unix socket, `POST .../connection` hands the connected socket itself to the caller's
process; over TCP, the websocket of the same path without `/connection` carries one connection's
bytes (interactive/port_bridge.py). For the job's owner only; each counts as one of their sessions.
A refusal says why and closes with its code (api/websocket_channel.py): 4502 when nothing answers
on the port. When the job ends (or the daemon stops) a carried connection closes with 1001.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, WebSocket

from tao_server.api.deps import CallerDep, ServicesDep
from tao_server.api.error_responses import responses
from tao_server.api.routing import JsonRoute
from tao_server.api.websocket_channel import WebSocketChannel, refuse
from tao_server.errors import InvalidRequest, TaoError
from tao_server.interactive.port_bridge import bridge

router = APIRouter(prefix="/v1/jobs", tags=["sessions"], route_class=JsonRoute)

Port = Annotated[int, Path(ge=1, le=65535)]


@router.post(
    "/{job_id}/ports/{port}/connection",
    status_code=204,
    response_class=Response,
    responses={
        204: {"description": "The connection went to your process, ahead of this answer"},
        **responses(403, 404, 409, 422, 429, 502),
    },
)
async def hand_over_connection(request: Request, job_id: str, port: Port, services: ServicesDep, caller: CallerDep) -> Response:
    """On the Unix socket: one TCP connection to `port` inside the job, handed to your process itself.

    The connected socket arrives as a file descriptor (SCM_RIGHTS) with the byte `F`, ahead of
    this answer: the bytes then go between you and the job in the kernel, with no copy through
    the daemon. For the job's owner only, as the websocket of the same path without `/connection`,
    which is the way over TCP. While it connects it counts as one of your sessions (429 past the bound).
    """
    channel = getattr(request.state, "descriptors", None)
    if channel is None:
        raise InvalidRequest(
            "a connection can be handed over only on the Unix socket; over TCP use the websocket /v1/jobs/{id}/ports/{port}",
            field="port",
        )
    job, run = services.sessions.forward_job(job_id, caller)
    session = services.sessions.open(job, caller)
    try:
        connection = await services.sessions.connect(run, port, session)
    finally:
        session.close()
    try:
        channel.send(connection.fileno())  # a caller gone meanwhile gets nothing: the answer below goes nowhere either
    finally:
        connection.close()
    return Response(status_code=204)


@router.websocket("/{job_id}/ports/{port}")
async def forward(websocket: WebSocket, job_id: str, port: Port, services: ServicesDep, caller: CallerDep) -> None:
    await websocket.accept()
    try:
        job, run = services.sessions.forward_job(job_id, caller)
        session = services.sessions.open(job, caller)
    except TaoError as exc:
        await refuse(websocket, exc)
        return
    try:
        connection = await services.sessions.connect(run, port, session)
        connection.setblocking(False)
        try:
            await bridge(WebSocketChannel(websocket), connection, session)
        finally:
            connection.close()
    except TaoError as exc:
        await refuse(websocket, exc)
    finally:
        session.close()

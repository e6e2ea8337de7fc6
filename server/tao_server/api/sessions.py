"""Websockets into a job's run: its terminal (/v1/jobs/{id}/terminal) and its ports (/v1/jobs/{id}/ports/{port}).

Both speak binary frames for bytes and JSON text frames for control, and refuse with
`{"type": "error", "code", "message", "field"}` and a close code: 4404 for a job the caller may
not see, 4403 for one that is not theirs, 4409 for one that takes no session (not `-i`, ended,
a batch backend), 4502 when nothing answers on the port. The protocol is described in the
OpenAPI document's description (app.py), as websockets have no operations there.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, WebSocket, WebSocketDisconnect

from tao_server.api.deps import CallerDep, ServicesDep
from tao_server.api.errors import responses
from tao_server.api.logs import MAX_OFFSET, end_message
from tao_server.api.routing import JsonRoute
from tao_server.backends import Terminal
from tao_server.errors import InvalidRequest, TaoError
from tao_server.jobs.logs import Heartbeat
from tao_server.jobs.sessions import JobSessions
from tao_server.models import Job

router = APIRouter(prefix="/v1/jobs", tags=["sessions"], route_class=JsonRoute)

FORWARD_CHUNK = 1024 * 1024
_CLOSE_CODES = {404: 4404, 403: 4403, 409: 4409, 502: 4502}
TerminalOffset = Annotated[int | None, Query(ge=0, le=MAX_OFFSET, description="output from this byte; omitted: from now on")]
Port = Annotated[int, Path(ge=1, le=65535)]


@router.websocket("/{job_id}/terminal")
async def terminal(websocket: WebSocket, job_id: str, services: ServicesDep, caller: CallerDep, offset: TerminalOffset = None) -> None:
    await websocket.accept()
    try:
        job = services.sessions.terminal_job(job_id, caller)
        start = services.jobs.log_size(job.id) if offset is None else offset
        output = services.jobs.follow_log(job.id, caller, start, services.settings.heartbeat_interval)
    except TaoError as exc:
        await _refuse(websocket, exc)
        return
    sender = _send_output(websocket, output, lambda: services.jobs.get(job.id, caller))
    await _until_either(_copy_input(websocket, services.sessions, job), sender)


@router.post(
    "/{job_id}/ports/{port}/connection",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "The connection went to your process, ahead of this answer"}, **responses(403, 404, 409, 422, 502)},
)
async def hand_over_connection(request: Request, job_id: str, port: Port, services: ServicesDep, caller: CallerDep) -> Response:
    """On the Unix socket: one TCP connection to `port` inside the job, handed to your process itself.

    The connected socket arrives as a file descriptor (SCM_RIGHTS) with the byte `F`, ahead of
    this answer: the bytes then go between you and the job in the kernel, with no copy through
    the daemon. For the job's owner only, as the websocket of the same path without `/connection`,
    which is the way over TCP.
    """
    channel = getattr(request.state, "descriptors", None)
    if channel is None:
        raise InvalidRequest(
            "a connection can be handed over only on the Unix socket; over TCP use the websocket /v1/jobs/{id}/ports/{port}",
            field="port",
        )
    _job, run = services.sessions.forward_job(job_id, caller)
    connection = await services.sessions.connect(run, port)
    try:
        channel.send(connection.fileno())  # a caller gone meanwhile gets nothing: the answer below goes nowhere either
    finally:
        connection.close()
    return Response(status_code=204)


@router.websocket("/{job_id}/ports/{port}")
async def forward(websocket: WebSocket, job_id: str, port: Port, services: ServicesDep, caller: CallerDep) -> None:
    await websocket.accept()
    try:
        _job, run = services.sessions.forward_job(job_id, caller)
        connection = await services.sessions.connect(run, port)
    except TaoError as exc:
        await _refuse(websocket, exc)
        return
    connection.setblocking(False)
    try:
        await _splice(websocket, connection)
    finally:
        connection.close()


# -- the terminal ---------------------------------------------------------------------------------


async def _send_output(websocket: WebSocket, output: AsyncIterator[bytes | Heartbeat], final: Any) -> None:
    """The job's output as it is written, heartbeats while it is quiet, then its end and a normal close."""
    heartbeat = json.dumps({"type": "heartbeat"})
    async for item in output:
        if isinstance(item, Heartbeat):
            await websocket.send_text(heartbeat)
        else:
            await websocket.send_bytes(item)
    await websocket.send_text(json.dumps(end_message(final())))
    await websocket.close()


async def _copy_input(websocket: WebSocket, sessions: JobSessions, job: Job) -> None:
    """Keys and resizes into the run's terminal, opened at the first message; returns when the client leaves."""
    terminal: Terminal | None = None
    usable = True  # False once the run's input is gone: what follows is read and dropped
    try:
        while (message := await websocket.receive())["type"] != "websocket.disconnect":
            if not usable:
                continue
            try:
                if terminal is None:
                    terminal = await sessions.open_terminal(job)
                    if terminal is None:  # the job ended first
                        usable = False
                        continue
                if (data := message.get("bytes")) is not None:
                    await sessions.call(terminal.write, data)
                elif (text := message.get("text")) is not None:
                    await _control(sessions, terminal, text)
            except TaoError:  # the run ended, or its engine refused: its output and end say the rest
                usable = False
    finally:
        if terminal is not None:
            terminal.close()  # sockets only: closing them does not wait


async def _control(sessions: JobSessions, terminal: Terminal, text: str) -> None:
    """{"type": "resize", "rows", "cols"} or {"type": "eof"}; anything else is ignored, for clients newer than this daemon."""
    try:
        control = json.loads(text)
    except ValueError:
        return
    if not isinstance(control, dict):
        return
    if control.get("type") == "eof":
        await sessions.call(terminal.end_input)
    elif control.get("type") == "resize" and all(_dimension(control.get(key)) for key in ("rows", "cols")):
        await sessions.call(terminal.resize, control["rows"], control["cols"])


def _dimension(value: object) -> bool:
    return type(value) is int and 0 < value < 65536


# -- a port ---------------------------------------------------------------------------------------


async def _splice(websocket: WebSocket, connection: socket.socket) -> None:
    """Bytes both ways until both sides have ended, or the client leaves. EOF travels as {"type": "eof"}."""
    client_eof = asyncio.Event()
    upstream = asyncio.ensure_future(_client_to_port(websocket, connection, client_eof))
    downstream = asyncio.ensure_future(_port_to_client(websocket, connection))
    eof = asyncio.ensure_future(client_eof.wait())
    try:
        await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
        if upstream.done():  # the client left
            return
        if not downstream.result():  # the connection broke: say so
            await websocket.close(code=1011)
            return
        await asyncio.wait({upstream, eof}, return_when=asyncio.FIRST_COMPLETED)
        if not upstream.done():  # both sides have ended
            await websocket.close()
    except WebSocketDisconnect:
        return
    finally:
        for task in (upstream, downstream, eof):
            task.cancel()
        await asyncio.gather(upstream, downstream, eof, return_exceptions=True)


async def _client_to_port(websocket: WebSocket, connection: socket.socket, client_eof: asyncio.Event) -> None:
    """The client's bytes to the port, its EOF as a half-close; returns when the client leaves."""
    loop = asyncio.get_running_loop()
    while (message := await websocket.receive())["type"] != "websocket.disconnect":
        if client_eof.is_set():
            continue  # nothing goes to the port after the client's EOF
        if (data := message.get("bytes")) is not None:
            try:
                await loop.sock_sendall(connection, data)
            except OSError:
                client_eof.set()  # the port stopped reading: its side of the stream says the rest
        elif message.get("text") and _is_eof(message["text"]):
            try:
                connection.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            client_eof.set()


async def _port_to_client(websocket: WebSocket, connection: socket.socket) -> bool:
    """The port's bytes to the client, then {"type": "eof"}; True on a clean end, False when the connection broke."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            data = await loop.sock_recv(connection, FORWARD_CHUNK)
        except OSError:
            return False
        if not data:
            await websocket.send_text('{"type": "eof"}')
            return True
        await websocket.send_bytes(data)


def _is_eof(text: str) -> bool:
    try:
        control = json.loads(text)
    except ValueError:
        return False
    return isinstance(control, dict) and control.get("type") == "eof"


# -- both -----------------------------------------------------------------------------------------


async def _until_either(first: Coroutine[Any, Any, None], second: Coroutine[Any, Any, None]) -> None:
    """Run both until one returns (the client left, or the job ended and was said so); then stop the other."""
    tasks = [asyncio.ensure_future(first), asyncio.ensure_future(second)]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, (asyncio.CancelledError, WebSocketDisconnect)):
            raise result


async def _refuse(websocket: WebSocket, exc: TaoError) -> None:
    await websocket.send_text(json.dumps({"type": "error", **exc.to_dict()}))
    await websocket.close(code=_CLOSE_CODES.get(exc.http_status, 4400))

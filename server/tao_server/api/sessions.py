"""Websockets into a job's run: its terminal (/v1/jobs/{id}/terminal) and its ports (/v1/jobs/{id}/ports/{port}).

Both speak binary frames for bytes and JSON text frames for control, and refuse with
`{"type": "error", "code", "message", "field"}` and a close code: 4404 for a job the caller may
not see, 4403 for one that is not theirs, 4409 for one that takes no session (not `-i`, ended,
a batch backend), 4429 past the caller's or the job's bound on sessions, 4400 for a control
frame the daemon does not read (not JSON, over MAX_CONTROL_BYTES, nested too deeply), 4502 when
nothing answers on the port. The protocol is described in the OpenAPI document's description
(api/docs.py), as websockets have no operations there.

Every session is counted and ended by jobs/sessions.py: when its job ends, a terminal's input
closes at once and its output goes on to the end; a port's connection closes (1001). When the
daemon stops, a terminal closes with 1012 and a port's connection with 1001.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Coroutine, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from tao_server.api import client_json
from tao_server.api.deps import CallerDep, ServicesDep
from tao_server.api.errors import responses
from tao_server.api.logs import MAX_OFFSET, SERVICE_RESTART, end_message
from tao_server.api.routing import JsonRoute
from tao_server.backends import Terminal
from tao_server.errors import DaemonStopping, InvalidRequest, TaoError
from tao_server.jobs.logs import Heartbeat
from tao_server.jobs.sessions import JobSessions, Session
from tao_server.models import Job

router = APIRouter(prefix="/v1/jobs", tags=["sessions"], route_class=JsonRoute)

FORWARD_CHUNK = 1024 * 1024
MAX_CONTROL_BYTES = 4096  # a control frame is a few dozen bytes: {"type": "resize", "rows": 40, "cols": 120}
_CLOSE_CODES = {404: 4404, 403: 4403, 409: 4409, 429: 4429, 502: 4502}
GOING_AWAY = 1001  # a port's connection, when its job ends
TerminalOffset = Annotated[int | None, Query(ge=0, le=MAX_OFFSET, description="output from this byte; omitted: from now on")]
Port = Annotated[int, Path(ge=1, le=65535)]


@router.websocket("/{job_id}/terminal")
async def terminal(websocket: WebSocket, job_id: str, services: ServicesDep, caller: CallerDep, offset: TerminalOffset = None) -> None:
    await websocket.accept()
    try:
        job = services.sessions.terminal_job(job_id, caller)
        start = services.jobs.log_size(job.id) if offset is None else offset
        output = services.jobs.follow_log(job.id, caller, start, services.settings.heartbeat_interval)
        session = services.sessions.open(job, caller)
    except TaoError as exc:
        await _refuse(websocket, exc)
        return
    try:
        sender = _send_output(websocket, output, lambda: services.jobs.get(job.id, caller))
        await _terminal_session(sender, _copy_input(websocket, services.sessions, session, job), session)
    except InvalidRequest as exc:
        await _refuse(websocket, exc)
    finally:
        session.close()


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
        await _refuse(websocket, exc)
        return
    try:
        connection = await services.sessions.connect(run, port, session)
        connection.setblocking(False)
        try:
            await _splice(websocket, connection, session)
        finally:
            connection.close()
    except TaoError as exc:
        await _refuse(websocket, exc)
    finally:
        session.close()


# -- the terminal ---------------------------------------------------------------------------------


async def _terminal_session(sender: Coroutine[Any, Any, None], copier: Coroutine[Any, Any, None], session: Session) -> None:
    """The output and the input, until the output has ended or the client leaves.

    When the job ends (or the daemon stops) first, the input closes at once and the output goes on to its end.
    """
    sending, copying, ended = asyncio.ensure_future(sender), asyncio.ensure_future(copier), asyncio.ensure_future(session.ended.wait())
    try:
        await asyncio.wait({sending, copying, ended}, return_when=asyncio.FIRST_COMPLETED)
        if not sending.done() and not copying.done():
            copying.cancel()
            await asyncio.wait({sending})
    finally:
        failures = await _stop(sending, copying, ended)
    if failures:
        raise failures[0]


async def _send_output(websocket: WebSocket, output: AsyncIterator[bytes | Heartbeat], final: Any) -> None:
    """The job's output as it is written, heartbeats while it is quiet, then its end and a normal close."""
    heartbeat = json.dumps({"type": "heartbeat"})
    try:
        async for item in output:
            if isinstance(item, Heartbeat):
                await websocket.send_text(heartbeat)
            else:
                await websocket.send_bytes(item)
    except DaemonStopping:
        await websocket.close(code=SERVICE_RESTART)
        return
    await websocket.send_text(json.dumps(end_message(final())))
    await websocket.close()


async def _copy_input(websocket: WebSocket, sessions: JobSessions, session: Session, job: Job) -> None:
    """Keys and resizes into the run's terminal, opened at the first message; returns when the client leaves.

    A control frame the daemon does not read raises InvalidRequest, whether the input is still usable or not.
    """
    terminal: Terminal | None = None
    usable = True  # False once the run's input is gone: what follows is read and dropped
    try:
        while (message := await websocket.receive())["type"] != "websocket.disconnect":
            control = _control_of(message)
            if not usable:
                continue
            try:
                if terminal is None:
                    terminal = await sessions.open_terminal(job, session)
                    if terminal is None:  # the job ended first
                        usable = False
                        continue
                if (data := message.get("bytes")) is not None:
                    await session.call(terminal.write, data)
                elif control is not None:
                    await _control(session, terminal, control)
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


# -- a port ---------------------------------------------------------------------------------------


async def _splice(websocket: WebSocket, connection: socket.socket, session: Session) -> None:
    """Bytes both ways until both sides have ended, the client leaves, or the job ends. EOF travels as {"type": "eof"}."""
    client_eof = asyncio.Event()
    upstream = asyncio.ensure_future(_client_to_port(websocket, connection, client_eof))
    downstream = asyncio.ensure_future(_port_to_client(websocket, connection))
    eof = asyncio.ensure_future(client_eof.wait())
    ended = asyncio.ensure_future(session.ended.wait())
    try:
        await asyncio.wait({upstream, downstream, ended}, return_when=asyncio.FIRST_COMPLETED)
        if upstream.done():  # the client left, or sent a frame the daemon does not read
            upstream.result()
            return
        if ended.done():
            await websocket.close(code=GOING_AWAY)
            return
        if not downstream.result():  # the connection broke: say so
            await websocket.close(code=1011)
            return
        await asyncio.wait({upstream, eof, ended}, return_when=asyncio.FIRST_COMPLETED)
        if upstream.done():
            upstream.result()
        else:  # both sides have ended, or the job has
            await websocket.close(code=GOING_AWAY if ended.done() and not eof.done() else 1000)
    except WebSocketDisconnect:
        return
    finally:
        await _stop(upstream, downstream, eof, ended)


async def _client_to_port(websocket: WebSocket, connection: socket.socket, client_eof: asyncio.Event) -> None:
    """The client's bytes to the port, its EOF as a half-close; returns when the client leaves."""
    loop = asyncio.get_running_loop()
    while (message := await websocket.receive())["type"] != "websocket.disconnect":
        control = _control_of(message)
        if client_eof.is_set():
            continue  # nothing goes to the port after the client's EOF
        if (data := message.get("bytes")) is not None:
            try:
                await loop.sock_sendall(connection, data)
            except OSError:
                client_eof.set()  # the port stopped reading: its side of the stream says the rest
        elif control is not None and control.get("type") == "eof":
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


# -- both -----------------------------------------------------------------------------------------


async def _stop(*tasks: asyncio.Future[Any]) -> list[BaseException]:
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
        if not task.cancelled() and (failure := task.exception()) is not None and not isinstance(failure, WebSocketDisconnect)
    ]


def _control_of(message: Mapping[str, Any]) -> dict[str, Any] | None:
    """A text frame's control message (a JSON object); None for bytes, and for JSON that is not an object.

    InvalidRequest for a frame the daemon does not read: longer than MAX_CONTROL_BYTES, not JSON, nested too deeply.
    """
    text = message.get("text")
    if text is None:
        return None
    try:
        control = client_json.parse(text, MAX_CONTROL_BYTES)
    except client_json.UnreadableJson as exc:
        raise InvalidRequest(
            f'a control frame the daemon does not read: {exc.message}; control frames are JSON objects such as {{"type": "eof"}}'
        ) from None
    return control if isinstance(control, dict) else None


async def _refuse(websocket: WebSocket, exc: TaoError) -> None:
    if websocket.application_state != WebSocketState.CONNECTED:  # closed already: nothing can be said
        return
    try:
        await websocket.send_text(json.dumps({"type": "error", **exc.to_dict()}))
        await websocket.close(code=_CLOSE_CODES.get(exc.http_status, 4400))
    except WebSocketDisconnect:
        pass  # the client left meanwhile

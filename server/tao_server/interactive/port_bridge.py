"""One TCP connection to a port inside a job, carried over a session's websocket: bytes both ways.

Binary frames carry the bytes; `{"type": "eof"}` carries the end of one direction (a half-close).
The bridge lasts until both directions have ended (a normal close), the client leaves, the
connection to the port breaks (1011), or the job ends (1001).
"""

from __future__ import annotations

import asyncio
import socket

from tao_server.interactive.channel import BROKEN, GOING_AWAY, NORMAL, Channel, ClientLeft, stop_tasks
from tao_server.interactive.session_registry import Session

FORWARD_CHUNK = 1024 * 1024


async def bridge(channel: Channel, connection: socket.socket, session: Session) -> None:
    """Bytes both ways until both sides have ended, the client leaves, or the job ends. EOF travels as {"type": "eof"}.

    Raises what reading the client raised (InvalidRequest for a control frame the daemon does not read).
    """
    client_eof = asyncio.Event()
    upstream = asyncio.ensure_future(_client_to_port(channel, connection, client_eof))
    downstream = asyncio.ensure_future(_port_to_client(channel, connection))
    eof = asyncio.ensure_future(client_eof.wait())
    ended = asyncio.ensure_future(session.ended.wait())
    try:
        await asyncio.wait({upstream, downstream, ended}, return_when=asyncio.FIRST_COMPLETED)
        if upstream.done():  # the client left, or sent a frame the daemon does not read
            upstream.result()
            return
        if ended.done():
            await channel.close(code=GOING_AWAY)
            return
        if not downstream.result():  # the connection broke: say so
            await channel.close(code=BROKEN)
            return
        await asyncio.wait({upstream, eof, ended}, return_when=asyncio.FIRST_COMPLETED)
        if upstream.done():
            upstream.result()
        else:  # both sides have ended, or the job has
            await channel.close(code=GOING_AWAY if ended.done() and not eof.done() else NORMAL)
    except ClientLeft:
        return
    finally:
        await stop_tasks(upstream, downstream, eof, ended)


async def _client_to_port(channel: Channel, connection: socket.socket, client_eof: asyncio.Event) -> None:
    """The client's bytes to the port, its EOF as a half-close; returns when the client leaves."""
    loop = asyncio.get_running_loop()
    while (frame := await channel.receive()) is not None:
        if client_eof.is_set():
            continue  # nothing goes to the port after the client's EOF
        if isinstance(frame, bytes):
            try:
                await loop.sock_sendall(connection, frame)
            except OSError:
                client_eof.set()  # the port stopped reading: its side of the stream says the rest
        elif frame.get("type") == "eof":
            try:
                connection.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            client_eof.set()


async def _port_to_client(channel: Channel, connection: socket.socket) -> bool:
    """The port's bytes to the client, then {"type": "eof"}; True on a clean end, False when the connection broke."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            data = await loop.sock_recv(connection, FORWARD_CHUNK)
        except OSError:
            return False
        if not data:
            await channel.send_json({"type": "eof"})
            return True
        await channel.send_bytes(data)

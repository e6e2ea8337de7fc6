"""The daemon's listeners: uvicorn protocols that know who is calling, and TLS on TCP only.

uvicorn's protocols put no peer credentials in the ASGI scope. The subclasses here read them once
per connection (SO_PEERCRED, access/peer.py) and add them to the connection's `state`, which every
request and websocket on it receives as `request.state.peer`.

uvicorn applies one `ssl` setting to every socket it serves; the Unix socket must stay plain
(the kernel already names its callers), so TLS listeners are added here with their own context.

uvicorn raises SIGINT or SIGTERM again once it has shut down, to end the process as the signal
would have; a signal killing the process skips `tao-server`'s own clean-up (cli/serve.py removes the
socket file) and reports the daemon as killed. Here a signal only asks the server to stop, and
`tao-server` then ends normally, with status 0.

The server says when every listener, TLS ones included, accepts (`on_ready`) and when shutdown
begins (`on_stopping`): `tao-server` passes these on to systemd (service_manager.py).

A websocket's messages from its client are bounded (WS_MAX_MESSAGE), and a websocket whose peer
stopped reading is cut a while after its handler has returned, rather than held open for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from tao_server.access.peer import peer_credentials

if TYPE_CHECKING:
    from uvicorn._types import ASGISendEvent

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _HttpProtocol
except ImportError:  # httptools not installed: the pure-Python parser
    from uvicorn.protocols.http.h11_impl import H11Protocol as _HttpProtocol  # type: ignore[assignment]


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# The largest websocket message a client may send: `tao` sends input and forwarded bytes in pieces of
# 1 MiB at most. A message waits whole in memory until its session takes it: the bound keeps a
# session's share small (uvicorn's default is 16 MiB).
WS_MAX_MESSAGE = 2 * 1024 * 1024
# Seconds after a websocket's handler returned: the closing handshake has had its own 10 s by then.
ABORT_AFTER = 15.0
_FINAL_BINARY = 0x82  # FIN, opcode 2
_SEPARATE_PAYLOAD = 64 * 1024  # a smaller message is joined to its header: one write, and a copy too small to matter


class TlsAwareServer(uvicorn.Server):
    """uvicorn's server, plus TLS listeners; `on_ready` runs once every listener accepts, `on_stopping` as shutdown begins."""

    def __init__(
        self,
        config: uvicorn.Config,
        tls_sockets: list[socket.socket],
        tls: ssl.SSLContext | None,
        on_ready: Callable[[], object] = lambda: None,
        on_stopping: Callable[[], object] = lambda: None,
    ) -> None:
        super().__init__(config)
        self.tls_sockets = tls_sockets
        self.tls = tls
        self.on_ready = on_ready
        self.on_stopping = on_stopping

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's startup runs the app's lifespan (the job table reconciled with the engine), then serves `sockets`.
        await super().startup(sockets=sockets)
        if self.should_exit:
            return
        loop = asyncio.get_running_loop()
        for sock in self.tls_sockets:
            server = await loop.create_server(self._new_protocol, sock=sock, ssl=self.tls, backlog=self.config.backlog)
            self.servers.append(server)  # closed with the others at shutdown
        self.on_ready()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.on_stopping()
        await super().shutdown(sockets=sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM stop the server (a second SIGINT at once), and are not raised again after."""
        if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _new_protocol(self, _loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
        # As uvicorn's own startup builds each connection's protocol.
        return self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state, _loop=_loop
        )


class _WithPeer:
    app_state: dict[str, Any]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        peer = peer_credentials(transport)
        self.app_state = {**self.app_state, "peer": peer}
        if peer is not None:  # a Unix socket: it can carry file descriptors to the caller's process
            self.app_state["descriptors"] = DescriptorChannel(transport)


class DescriptorChannel:
    """Hands an open file descriptor to the process at the other end of a Unix connection (SCM_RIGHTS).

    The descriptor travels with one byte, b"F", written on the connection itself ahead of the
    answer to the request that asked for it; nothing else may be in flight on the connection then.
    `send` runs on the event loop's thread, as the loop's own closing of the connection does: so
    the connection it checks is open is the one it writes to, never a later one given its number.
    """

    def __init__(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def send(self, descriptor: int) -> bool:
        """False when the caller has gone: nothing was sent."""
        if self._transport.is_closing():
            return False
        # A socket object over a duplicate of the connection's descriptor: closing it leaves the connection
        # open. Its blocking mode is left alone: that flag is shared with the event loop's own descriptor.
        with socket.socket(fileno=os.dup(self._transport.get_extra_info("socket").fileno())) as connection:
            try:
                socket.send_fds(connection, [b"F"], [descriptor])
            except OSError:
                return False
        return True


def _binary_header(length: int) -> bytes:
    """A final binary frame's header, as a server sends it (unmasked): RFC 6455, section 5.2."""
    if length < 126:
        return struct.pack("!BB", _FINAL_BINARY, length)
    if length < 65536:
        return struct.pack("!BBH", _FINAL_BINARY, 126, length)
    return struct.pack("!BBQ", _FINAL_BINARY, 127, length)


class HttpProtocol(_WithPeer, _HttpProtocol):
    pass


class WebSocketProtocol(_WithPeer, WebSocketsSansIOProtocol):
    """uvicorn's websocket protocol, with binary messages written without a copy, and a connection still
    open ABORT_AFTER seconds after its handler returned cut.

    A binary message (a log's chunk, a forwarded connection's bytes) goes out as its frame's header
    and then the message itself, rather than copied into one frame first: what streams most, copied
    least. Anything else (text, close, a message on a connection that is not plainly open) is
    uvicorn's own. Closing a connection waits until what was written has gone: a peer that stopped
    reading would keep it, and what it holds, for ever.
    """

    async def send(self, message: ASGISendEvent) -> None:
        data = message.get("bytes") if message["type"] == "websocket.send" else None
        if data is None or not self._plainly_open():
            await super().send(message)
            return
        await self.writable.wait()  # the transport's buffer is past its high-water mark: wait for the peer
        if self.disconnected:
            raise ClientDisconnected()
        if len(data) < _SEPARATE_PAYLOAD:
            self.transport.write(_binary_header(len(data)) + data)
        else:
            self.transport.write(_binary_header(len(data)))
            self.transport.write(data)

    def _plainly_open(self) -> bool:
        return (
            self.handshake_complete
            and self.initial_response is None
            and not self.close_sent
            and not self.conn.extensions
            and self.conn.state is State.OPEN
            and not self.transport.is_closing()
        )

    async def run_asgi(self) -> None:
        await super().run_asgi()
        self.loop.call_later(ABORT_AFTER, self._abort_if_open)

    def _abort_if_open(self) -> None:
        if not self.disconnected:
            self.transport.abort()

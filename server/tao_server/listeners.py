"""A uvicorn server that speaks TLS on its TCP listener and plain HTTP on its Unix socket.

uvicorn applies one `ssl` setting to every socket it serves; the Unix socket must stay plain
(the kernel already names its callers), so TLS listeners are added here with their own context.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

import uvicorn


class TlsAwareServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, tls_sockets: list[socket.socket], tls: ssl.SSLContext | None) -> None:
        super().__init__(config)
        self.tls_sockets = tls_sockets
        self.tls = tls

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.should_exit or not self.tls_sockets:
            return
        loop = asyncio.get_running_loop()
        for sock in self.tls_sockets:
            server = await loop.create_server(self._new_protocol, sock=sock, ssl=self.tls, backlog=self.config.backlog)
            self.servers.append(server)  # closed with the others at shutdown

    def _new_protocol(self, _loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
        # As uvicorn's own startup builds each connection's protocol.
        return self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state, _loop=_loop
        )

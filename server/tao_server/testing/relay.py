"""Copying bytes between two sockets, for the relays tests put between the daemon and what it talks to."""

from __future__ import annotations

import socket
from collections.abc import Callable


def relay(source: socket.socket, target: socket.socket, before_sending: Callable[[bytes], None] | None = None) -> None:
    """Copy `source` to `target` until either side closes or breaks, then close both.

    `before_sending` sees each piece first, and may hold it back by taking its time.
    """
    while True:
        try:
            data = source.recv(256 * 1024)
            if not data:
                break
            if before_sending is not None:
                before_sending(data)
            target.sendall(data)
        except OSError:
            break
    shut(target, source)


def shut(*sockets: socket.socket) -> None:
    """Close sockets at once, the connection too, whatever state they are in."""
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            sock.close()
        except OSError:
            pass

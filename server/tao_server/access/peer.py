"""Who is calling: the kernel's account of the process at the other end of a Unix socket (SO_PEERCRED)."""

from __future__ import annotations

import asyncio
import errno
import socket
import struct

_UCRED = struct.Struct("3i")  # pid, uid, gid
SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)  # Linux 4.13+; Python names it from 3.13 on


def peer_credentials(transport: asyncio.BaseTransport) -> tuple[int, int, tuple[int, ...]] | None:
    """(uid, gid, supplementary groups) of the process that connected over a Unix socket; None over TCP."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    _pid, uid, gid = ucred(sock)
    return uid, gid, _peer_groups(sock)


def ucred(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a connected Unix socket."""
    return _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))


def _peer_groups(sock: socket.socket) -> tuple[int, ...]:
    for count in (64, 65536):  # most processes have a few groups; the kernel allows up to 65536
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 4 * count)
        except OSError as exc:
            if exc.errno == errno.ERANGE:
                continue
            return ()  # a kernel without SO_PEERGROUPS: the primary group only
        return struct.unpack(f"{len(raw) // 4}I", raw)
    return ()

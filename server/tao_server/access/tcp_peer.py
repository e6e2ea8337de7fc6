"""Who is at the other end of a loopback TCP connection: the owner of its socket, from /proc/net/tcp and tcp6.

The kernel names a Unix socket's caller (peer.py); over TCP it says nothing, but on loopback both
ends are sockets of this host, and /proc/net/tcp (IPv4) and /proc/net/tcp6 (IPv6) list each with
its owner's uid. The caller's end is the row whose local address is the connection's client and
whose remote address is the daemon's listener.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from pathlib import Path

PROC_NET = Path("/proc/net")
_UID_FIELD = 7  # sl, local_address, rem_address, st, tx_queue:rx_queue, tr:tm->when, retrnsmt, uid, ...


def loopback_owner(client: tuple[str, int], server: tuple[str, int], proc_net: Path = PROC_NET) -> int | None:
    """The uid that owns the client's end of the loopback connection client -> server; None when it cannot be told."""
    try:
        client_ip, server_ip = ipaddress.ip_address(client[0]), ipaddress.ip_address(server[0])
    except ValueError:
        return None
    if not (client_ip.is_loopback or _mapped_loopback(client_ip)):
        return None
    wanted = (_row_address(client_ip, client[1]), _row_address(server_ip, server[1]))
    for name in ("tcp", "tcp6"):
        try:
            lines = (proc_net / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > _UID_FIELD and (fields[1], fields[2]) == wanted:
                return int(fields[_UID_FIELD])
    return None


def _mapped_loopback(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback


def _row_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> str:
    """An address as /proc/net/tcp* writes it: the address's 32-bit words in the host's byte order, in hex, then the port."""
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    packed = socket.inet_pton(family, str(ip))
    words = struct.unpack(f"={len(packed) // 4}I", packed)
    return "".join(f"{word:08X}" for word in words) + f":{port:04X}"

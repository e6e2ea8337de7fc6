"""Tell the service manager that started the daemon (systemd, `Type=notify`) when it is ready and when it stops.

systemd's notify protocol is one datagram of `KEY=VALUE` lines sent to the Unix socket named by
$NOTIFY_SOCKET (a name starting with `@` lives in the abstract namespace). That is all it takes,
so the standard library does it and the daemon needs no systemd binding.

Ready means a client would be served: the migrations ran and every listener accepts. Until then
`systemctl start` waits, and so do the units ordered after tao-server.service.

A notification that cannot be sent is logged and the daemon goes on: a daemon that serves its
users without telling systemd is better than one that refuses to run, and systemd reports the
missing notification itself when its start timeout runs out.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

# systemd reads its notify socket at once; the bound keeps a stuck reader from stalling the daemon.
_SEND_TIMEOUT = 5.0


class ServiceManager:
    """The service manager at `address` ($NOTIFY_SOCKET); with no address, told nothing."""

    def __init__(self, address: str | None) -> None:
        self.address = address or None

    def ready(self, addresses: list[str]) -> bool:
        """Every listener accepts: `systemctl start` may return."""
        return self.notify(READY="1", STATUS=f"listening on {', '.join(addresses)}", MAINPID=str(os.getpid()))

    def stopping(self) -> bool:
        """Shutdown has begun: the listeners close, running jobs stay for the next daemon."""
        return self.notify(STOPPING="1", STATUS="stopping; running jobs stay for the next daemon")

    def notify(self, **fields: str) -> bool:
        """Send `fields` as one message; True when it was sent, False when there is no manager or sending failed."""
        if self.address is None:
            return False
        message = "".join(f"{key}={value}\n" for key, value in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(_SEND_TIMEOUT)
                sock.sendto(message, unix_address(self.address))
        except (OSError, ValueError) as exc:
            log.warning("cannot notify the service manager at %s ($NOTIFY_SOCKET): %s", self.address, exc)
            return False
        return True


def unix_address(address: str) -> str | bytes:
    """$NOTIFY_SOCKET as `socket.sendto` takes it: `@name` is `\\0name`, in the abstract namespace."""
    if address.startswith("@"):
        return b"\0" + address[1:].encode()
    if not address.startswith("/"):
        # systemd 254 also offers vsock: addresses, for virtual machines; a daemon on a shared GPU box gets a path.
        raise ValueError("not a Unix socket address")
    return address

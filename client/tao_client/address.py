"""Finding the daemon, and where `tao` may start one of its own.

`tao` starts a daemon (when none answers) and `tao daemon` starts and stops one only where that
daemon can be nobody else's: a Unix socket in a directory of the caller's own that no one else may
enter (tao makes it 0700), at the default per-user location, or at an explicit address when
TAO_AUTOSTART=1 says so. A socket anywhere else (a service's /run/tao, a TCP address) belongs to a
service: when it does not answer, `tao` says so and how to check it, and starts nothing there,
which would take the service's socket from it.
"""

from __future__ import annotations

import os
import socket
import stat

from tao_client._errors import DaemonUnreachable, TaoClientError
from tao_client._http import NOTHING_ANSWERS
from tao_common import paths

SERVICE_CHECK = "check it with `systemctl status tao-server`, or `docker compose ps` where it runs in Docker Compose"


class Address:
    """Where the daemon listens: `url` for people, `socket_path` when it is a Unix socket.

    `explicit`: it was given (an argument, --host or $TAO_HOST), rather than the default per-user location.
    """

    __slots__ = ("explicit", "socket_path", "url")

    def __init__(self, url: str, socket_path: str | None = None, explicit: bool = True) -> None:
        self.url = url
        self.socket_path = socket_path
        self.explicit = explicit

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Address) and (self.url, self.socket_path) == (other.url, other.socket_path)

    def __repr__(self) -> str:
        return f"Address({self.url!r})"

    @property
    def base_url(self) -> str:
        return "http://tao" if self.socket_path is not None else self.url


def resolve(host: str | None = None) -> Address:
    """The daemon's address: `host`, else $TAO_HOST (unix:///path or http://host:port), else the local socket."""
    host = host or os.environ.get("TAO_HOST") or ""
    if not host:
        path = paths.socket_path()
        return Address(f"unix://{path}", path, explicit=False)
    if host.startswith("unix://"):
        path = host.removeprefix("unix://")
        return Address(f"unix://{path}", path)
    if host.startswith("/"):
        return Address(f"unix://{host}", host)
    if host.startswith(("http://", "https://")):
        return Address(host.rstrip("/"))
    raise TaoClientError(f"TAO_HOST={host!r} is not an address; use unix:///path/to/tao.sock or http://HOST:PORT")


def tcp_credentials(address: Address, token: str | None, ca_cert: str | None) -> tuple[str | None, str | None]:
    """(token, CA bundle) for the address: over TCP the given ones, else $TAO_TOKEN and $TAO_CA_CERT; none on a Unix socket."""
    if address.socket_path is None:
        return token or os.environ.get("TAO_TOKEN") or None, ca_cert or os.environ.get("TAO_CA_CERT") or None
    return None, None  # the kernel tells the daemon who is calling


def listening(address: Address) -> bool:
    if address.socket_path is None:
        return True
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(address.socket_path)
    except PermissionError:
        return True  # a daemon is there, just not open to this user: starting another would not help
    except OSError:
        return False
    finally:
        probe.close()
    return True


def not_own(address: Address) -> str | None:
    """Why a daemon at `address` is not one `tao` may start or stop for this user; None when it may.

    Only a directory no one else may enter holds a socket nobody else relies on: a shared daemon's
    socket must be reachable by its users, so its directory is open to them.
    """
    if address.socket_path is None:
        return "it is a TCP address, where a service listens"
    directory = os.path.dirname(address.socket_path) or "."
    try:
        info = os.stat(directory)
    except FileNotFoundError:
        return None  # tao makes it, private
    except OSError as exc:
        return f"its directory {directory} cannot be read ({exc.strerror})"
    if info.st_uid != os.getuid():
        return f"its directory {directory} belongs to uid {info.st_uid}: a service's, or another user's"
    if stat.S_IMODE(info.st_mode) & 0o077:
        return f"its directory {directory} is open to other users (mode {stat.S_IMODE(info.st_mode):04o}), as a service's is"
    return None


def autostart_refusal(address: Address) -> str | None:
    """Why `tao` starts no daemon by itself at `address` when none answers; None when it does."""
    if os.environ.get("TAO_NO_AUTOSTART"):
        return "TAO_NO_AUTOSTART is set"
    if address.explicit and not os.environ.get("TAO_AUTOSTART"):
        return "it was given as the daemon's address (TAO_AUTOSTART=1 allows that, in a private directory of yours)"
    return not_own(address)


def unreachable(address: Address, reason: str) -> DaemonUnreachable:
    """The error for a daemon that cannot be reached; when nothing answers where `tao` starts none, why not and what to check."""
    if reason != NOTHING_ANSWERS:
        return DaemonUnreachable(address.url, reason)
    refusal = autostart_refusal(address)
    if refusal == "TAO_NO_AUTOSTART is set":
        return DaemonUnreachable(address.url, f"{NOTHING_ANSWERS} (TAO_NO_AUTOSTART is set: tao starts no daemon)")
    if refusal is None:
        return DaemonUnreachable(address.url, NOTHING_ANSWERS)
    return DaemonUnreachable(
        address.url, f"the service at that address is not answering; {SERVICE_CHECK}. tao starts no daemon there: {refusal}"
    )

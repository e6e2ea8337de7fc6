"""Finding the daemon, and starting a local one when none answers on a Unix socket."""

from __future__ import annotations

import os
import socket
import sys
import time

from tao_client import _paths
from tao_client._errors import DaemonUnreachable, TaoClientError

START_TIMEOUT = 30.0


class Address:
    """Where the daemon listens: `url` for people, `socket_path` when it is a Unix socket."""

    __slots__ = ("socket_path", "url")

    def __init__(self, url: str, socket_path: str | None = None) -> None:
        self.url = url
        self.socket_path = socket_path

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
        path = _paths.socket_path()
        return Address(f"unix://{path}", path)
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
    if address.socket_path is not None:
        return None, None  # the kernel tells the daemon who is calling
    return token or os.environ.get("TAO_TOKEN") or None, ca_cert or os.environ.get("TAO_CA_CERT") or None


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


def start_local(address: Address) -> None:
    """Start `tao-server` on the address's socket in the background, once even when many `tao` race."""
    import fcntl
    import subprocess
    from importlib.util import find_spec

    if address.socket_path is None or os.environ.get("TAO_NO_AUTOSTART"):
        raise DaemonUnreachable(address.url, "nothing answers there")
    if find_spec("tao_server") is None:
        raise DaemonUnreachable(
            address.url,
            "nothing answers there, and this install has no daemon to start: pip install 'tao-launcher[server]', or set TAO_HOST",
        )
    path = address.socket_path
    run_dir = os.path.dirname(path)
    if os.path.isdir(run_dir) and os.stat(run_dir).st_uid != os.getuid():
        # Another user's socket (a shared daemon's /run/tao): starting one of ours there is not the fix.
        raise DaemonUnreachable(
            address.url,
            "nothing answers there, and it is another user's daemon (a shared one that is down?): "
            "its admin starts it (systemctl start tao-server, or docker compose up -d)",
        )
    try:
        os.makedirs(run_dir, mode=0o700, exist_ok=True)
        lock = open(os.path.join(run_dir, f".{os.path.basename(path)}.start-lock"), "w")
    except OSError as exc:
        raise DaemonUnreachable(address.url, f"nothing answers there, and no daemon can be started there: {exc.strerror}") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if listening(address):
            return
        log_path = os.path.join(_paths.data_dir(), "daemon.log")
        # Private from the start, as the daemon makes everything in its data dir: the database
        # and this log can hold job arguments, and those can hold keys.
        os.makedirs(os.path.dirname(log_path), mode=0o700, exist_ok=True)
        with open(os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tao_server", "--socket", path],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the daemon outlives this terminal and its Ctrl-C
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if listening(address):
                return
            if process.poll() is not None:
                raise DaemonUnreachable(address.url, f"the daemon started for it exited ({process.returncode}):\n{_tail(log_path)}")
            time.sleep(0.02)
        raise DaemonUnreachable(address.url, f"a daemon was started but did not listen within {START_TIMEOUT:.0f}s; see {log_path}")


def _tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, errors="replace") as file:
            return "\n".join(file.read().splitlines()[-lines:])
    except OSError:
        return "(no log)"

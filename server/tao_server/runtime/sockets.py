"""The daemon's data-dir lock and the sockets it serves on, made and checked before anything listens.

Each refusal is a DaemonCannotStart naming what and why: `tao-server` says it in one line and
exits, leaving no socket behind that a client could take for a daemon that is down.
"""

from __future__ import annotations

import fcntl
import os
import socket
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from tao_server.access.paths import is_loopback
from tao_server.errors import DaemonCannotStart

if TYPE_CHECKING:
    import ssl

    from tao_server.settings import Settings


class Listeners:
    """The sockets uvicorn serves: `plain` ones itself, `tls` ones through TlsAwareServer; `addresses` for people."""

    def __init__(self) -> None:
        self.plain: list[socket.socket] = []
        self.tls: list[socket.socket] = []
        self.addresses: list[str] = []


def lock_data_dir(data_dir: Path) -> None:
    """The data dir, made when missing, and held until the process ends: one daemon per data dir.

    The lock is held by a bare descriptor that nothing closes: a file object would close it (and
    release the lock) when collected, which can come while the process still lives, winding down.
    """
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(data_dir / "daemon.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise DaemonCannotStart(f"cannot use the data dir {data_dir}: {exc.strerror} (tao-server runs as uid {os.getuid()})") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(descriptor, 64, 0).decode(errors="replace").strip()
        raise DaemonCannotStart(f"another tao-server (pid {holder or '?'}) already uses the data dir {data_dir}") from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, str(os.getpid()).encode(), 0)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The TCP listener's TLS, from --tls-cert and --tls-key; None without them."""
    if settings.tls_cert is None:
        return None
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise DaemonCannotStart(f"cannot use --tls-cert {settings.tls_cert} / --tls-key {settings.tls_key}: {exc}") from None
    return context


def tcp_listeners(settings: Settings, tls: ssl.SSLContext | None) -> Listeners:
    """--port's listener, and the dashboard's on 127.0.0.1 when a Unix socket has no plain HTTP one on loopback beside it."""
    listeners = Listeners()
    loopback_http = False
    if settings.tcp_port is not None:
        host = settings.tcp_address
        tcp = tcp_socket(host, settings.tcp_port)
        (listeners.tls if tls else listeners.plain).append(tcp)
        listeners.addresses.append(f"{'https' if tls else 'http'}://{url_host(host)}:{tcp.getsockname()[1]}")
        loopback_http = tls is None and is_loopback(host)
    if settings.socket is not None and settings.dashboard and not loopback_http:
        dashboard = tcp_socket("127.0.0.1", settings.dashboard_port)
        listeners.plain.append(dashboard)
        listeners.addresses.append(f"http://127.0.0.1:{dashboard.getsockname()[1]}")
    return listeners


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def check_socket_path(path: Path) -> None:
    """Refuse a path that holds something other than a socket, or a socket another daemon answers on;
    a stale socket (its daemon died) is removed."""
    if not (path.exists() or path.is_symlink()):
        return
    if not stat.S_ISSOCK(path.lstat().st_mode):
        raise DaemonCannotStart(f"{path} exists and is not a socket; remove it or choose another --socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()  # a stale socket from a daemon that died
    else:
        raise DaemonCannotStart(f"another daemon already listens on {path}")
    finally:
        probe.close()


def unix_socket(path: Path, mode: int, gid: int | None) -> socket.socket:
    """Listen on `path`; who may connect is the file's mode and group (a `tao` group on a shared box)."""
    try:
        if not path.parent.exists():
            path.parent.mkdir(parents=True)
            path.parent.chmod(0o755 if mode & 0o077 else 0o700)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # nobody else may connect before the mode below is in place
        try:
            sock.bind(str(path))
        finally:
            os.umask(old_umask)
    except OSError as exc:
        raise DaemonCannotStart(f"cannot listen on {path}: {exc.strerror}") from None
    try:
        if gid is not None:
            os.chown(path, -1, gid)
        path.chmod(mode)
        sock.listen(512)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise DaemonCannotStart(f"cannot set up the socket {path}: {exc.strerror}") from None
    return sock


def group_id(group: str) -> int:
    """--socket-group's gid: a number, or a group's name."""
    import grp

    try:
        return int(group) if group.isdecimal() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise DaemonCannotStart(f"--socket-group {group!r}: no such group; create it (groupadd {group}) or name another") from None


def tcp_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise DaemonCannotStart(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(512)
    return sock

"""`tao-server`: flags -> Settings -> uvicorn on a Unix socket and, when asked, TCP."""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import socket
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from tao_server import __version__
from tao_server.errors import TaoError

if TYPE_CHECKING:  # the settings stack is imported only once the flags are read
    import ssl

    from fastapi import FastAPI
    from pydantic import ValidationError
    from sqlalchemy.engine import Engine

    from tao_server.backends import Backend
    from tao_server.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tao-server", description="The TAO launcher daemon: runs TAO tasks in Docker for the `tao` CLI and HTTP clients."
    )
    parser.add_argument("--data-dir", type=Path, help="SQLite database and job logs (default: $TAO_DATA_DIR or ~/.local/share/tao)")
    _listener_arguments(parser)
    parser.add_argument("--policy", type=Path, help="what jobs of users other than admins may ask for (TOML; see README)")
    parser.add_argument(
        "--manifest", type=Path, help="task manifest in NVIDIA's launcher config format (default: ~/.tao/config.json, else the bundled one)"
    )
    parser.add_argument(
        "--host-paths",
        help="for a daemon in a container: the host trees mounted into it at the same paths (e.g. /home,/data); "
        "job mounts must lie under them",
    )
    parser.add_argument(
        "--backend", choices=["docker", "slurm"], help="where jobs run: this host's Docker engine (default) or a Slurm cluster"
    )
    parser.add_argument("--slurm-partition", help="the partition jobs go to (default: the cluster's default)")
    parser.add_argument(
        "--slurm-runtime", choices=["docker", "pyxis", "apptainer"], help="how a node runs the job's container (default: docker)"
    )
    parser.add_argument("--slurm-shared-dir", type=Path, help="batch scripts and outputs: a directory the daemon and every node see")
    parser.add_argument("--slurm-login", help="USER@HOST: run Slurm's commands there over SSH (default: here, on a login node)")
    parser.add_argument("--slurm-ssh-config", type=Path, help="an ssh_config file for --slurm-login (identity, port, known hosts)")
    parser.add_argument("--slurm-sbatch-args", help='default sbatch arguments for every job, e.g. "--account=ml --qos=normal"')
    parser.add_argument("--gpus", help='GPU inventory: "auto" (probe), "none", or indices such as "0,1"')
    parser.add_argument(
        "--gpu-mode",
        choices=["request", "env"],
        help="request: a Docker device request per job (default); env: NVIDIA_VISIBLE_DEVICES only, for an nvidia default runtime",
    )
    parser.add_argument(
        "--gpu-line",
        choices=["fifo", "fair", "backfill"],
        help="the GPU line's order: fifo (first come, first served), fair (fair share between users, images pulled "
        "while jobs wait), backfill (fair, and jobs with --time use idle GPUs the first in line cannot use yet; default)",
    )
    parser.add_argument(
        "--max-running-jobs", type=int, help="jobs without GPUs running at once (more wait queued); jobs with GPUs are bounded by the GPUs"
    )
    parser.add_argument("--stop-timeout", type=float, help="seconds between SIGTERM and SIGKILL when a job is cancelled")
    parser.add_argument(
        "--pull",
        dest="pull_policy",
        choices=["missing", "always", "never"],
        help="when jobs pull their image, unless they say otherwise (default: missing)",
    )
    parser.add_argument(
        "--public-url",
        help="the daemon's address as users' browsers reach it (https://tao.example:8443), for the dashboard links in notifications",
    )
    parser.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"])
    # Given by `tao` to the daemons it starts for its user (tao_client/local_daemon.py).
    parser.add_argument("--started-by", choices=["tao"], help=argparse.SUPPRESS)
    parser.add_argument("--version", action="version", version=f"tao-server {__version__}")
    return parser


def _listener_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the daemon listens: its Unix socket, TCP and TLS, and the dashboard's loopback listener."""
    parser.add_argument(
        "--socket", type=Path, help="Unix socket to listen on (default: $XDG_RUNTIME_DIR/tao/tao.sock or ~/.tao/run/tao.sock)"
    )
    parser.add_argument("--no-socket", action="store_true", help="do not listen on a Unix socket")
    parser.add_argument(
        "--socket-mode",
        help="the socket's permission bits (default 0600: the daemon's user only; 0660 with --socket-group for a shared box)",
    )
    parser.add_argument(
        "--socket-group", help="the group that owns the socket, e.g. tao: its members may connect when --socket-mode allows the group"
    )
    parser.add_argument("--host", dest="tcp_host", help="TCP address for --port (default 127.0.0.1)")
    parser.add_argument("--port", dest="tcp_port", type=int, help="also listen on this TCP port (off by default)")
    parser.add_argument(
        "--dashboard-port",
        type=int,
        help="the dashboard's listener on 127.0.0.1, opened when no --port serves plain HTTP on loopback (default: a free port)",
    )
    parser.add_argument("--no-dashboard", dest="dashboard", action="store_const", const=False, help="open no listener for the dashboard")
    parser.add_argument("--tls-cert", type=Path, help="serve TCP over TLS with this certificate (PEM); needs --tls-key")
    parser.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM)")
    parser.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="allow a TCP address other than loopback without TLS (tokens still travel in clear)",
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["token"]:
        from tao_server import token_cli

        sys.exit(token_cli.main(argv[1:]))
    if argv[:1] == ["healthcheck"]:
        from tao_server import healthcheck

        sys.exit(healthcheck.main(argv[1:]))
    args = _parser().parse_args(argv)
    overrides = {key: value for key, value in vars(args).items() if value is not None and key != "no_socket"}
    if args.no_socket:
        overrides["socket"] = None

    from pydantic import ValidationError

    from tao_server.settings import Settings

    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        _fail(_first_problem(exc))
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if settings.log_level != "debug":
        # uvicorn logs each websocket's opening at INFO: a port-forward opens one per connection.
        logging.getLogger("uvicorn.error").addFilter(_not_a_websocket_opening)
    sys.exit(serve(settings))


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    if error["type"] == "invalid_settings":  # a rule across settings (settings.py): its message says it all
        return str(error["msg"])
    return f"invalid setting: {error['loc'][0]}: {error['msg']}"


def serve(settings: Settings) -> int:
    """Check everything that can be checked, then create the Unix socket, last, and serve.

    The data dir, the database, the backend, TLS, the socket's group and path, the TCP ports, the
    manifest and the policy are all checked first: a daemon that cannot start says why in one line
    and leaves no socket behind, where a client could take it for a daemon that is down.
    """
    from tao_server import memory
    from tao_server.app import create_app

    memory.tune()
    # The database and logs hold job arguments and environments: for this user's eyes only.
    os.umask(0o077)
    _lock_data_dir(settings.data_dir)
    database, backend = _open_storage_and_backend(settings)
    tls = _tls_context(settings)
    group = _group_id(settings.socket_group) if settings.socket_group is not None else None
    if settings.socket is not None:
        _check_socket_path(settings.socket)
    listeners = _tcp_listeners(settings, tls)
    addresses = ([f"unix://{settings.socket}"] if settings.socket is not None else []) + listeners.addresses
    try:
        app = create_app(settings, backend=backend, addresses=addresses, database=database)
    except TaoError as exc:
        _fail(exc.message)
    if settings.socket is not None:
        listeners.plain.insert(0, _unix_socket(settings.socket, settings.socket_mode_bits, group))
    try:
        return _run(settings, app, listeners, tls, addresses)
    finally:
        _remove_socket_file(settings)


def _remove_socket_file(settings: Settings) -> None:
    if settings.socket is not None:
        settings.socket.unlink(missing_ok=True)


class _Listeners:
    """The sockets uvicorn serves: `plain` ones itself, `tls` ones through TlsAwareServer; `addresses` for people."""

    def __init__(self) -> None:
        self.plain: list[socket.socket] = []
        self.tls: list[socket.socket] = []
        self.addresses: list[str] = []


def _open_storage_and_backend(settings: Settings) -> tuple[Engine, Backend]:
    """The checked database, then the backend: a database that cannot be used stops the daemon before the engine is asked."""
    from tao_server import backends, db
    from tao_server.app import daemon_id

    try:
        database = db.open_checked(settings.db_path)
        return database, backends.connect(settings, daemon_id(settings.data_dir))
    except TaoError as exc:
        _fail(exc.message)


def _tcp_listeners(settings: Settings, tls: ssl.SSLContext | None) -> _Listeners:
    """--port's listener, and the dashboard's on 127.0.0.1 when a Unix socket has no plain HTTP one on loopback beside it."""
    from tao_server.access.paths import is_loopback

    listeners = _Listeners()
    loopback_http = False
    if settings.tcp_port is not None:
        host = settings.tcp_address
        tcp = _tcp_socket(host, settings.tcp_port)
        (listeners.tls if tls else listeners.plain).append(tcp)
        listeners.addresses.append(f"{'https' if tls else 'http'}://{_url_host(host)}:{tcp.getsockname()[1]}")
        loopback_http = tls is None and is_loopback(host)
    if settings.socket is not None and settings.dashboard and not loopback_http:
        dashboard = _tcp_socket("127.0.0.1", settings.dashboard_port)
        listeners.plain.append(dashboard)
        listeners.addresses.append(f"http://127.0.0.1:{dashboard.getsockname()[1]}")
    return listeners


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _run(settings: Settings, app: FastAPI, listeners: _Listeners, tls: ssl.SSLContext | None, addresses: list[str]) -> int:
    import asyncio

    import uvicorn

    from tao_server import stopping
    from tao_server.app import end_streams
    from tao_server.listeners import WS_MAX_MESSAGE, HttpProtocol, TlsAwareServer, WebSocketProtocol
    from tao_server.service_manager import ServiceManager

    config = uvicorn.Config(
        app,
        http=HttpProtocol,
        ws=WebSocketProtocol,
        log_level=settings.log_level,
        timeout_graceful_shutdown=stopping.grace(settings.stop_timeout),
        ws_max_size=WS_MAX_MESSAGE,
        # No per-message compression: it would compress a job's output again for each of its followers,
        # the costliest thing a stream could do, and one that a user could multiply at will.
        ws_per_message_deflate=False,
        ws_ping_interval=settings.ws_ping_interval,
        # No deadline for the answer: a session under flow control (a slow reader, a task not reading
        # its input) leaves the pong unread for as long as that lasts, and must not be cut for it.
        ws_ping_timeout=None,
        access_log=settings.log_level == "debug",
    )
    manager = ServiceManager(settings.notify_socket)

    def stop() -> None:
        manager.stopping()
        stopping.start_watchdog(settings.stop_timeout, last_words=lambda: _remove_socket_file(settings))
        # Once uvicorn has closed the listeners and told each connection to finish (its next await):
        # a client whose stream ends then finds the daemon gone, and waits for the next one.
        asyncio.get_running_loop().call_soon(end_streams, app)

    server = TlsAwareServer(config, listeners.tls, tls, on_ready=lambda: manager.ready(addresses), on_stopping=stop)
    logging.getLogger("tao_server").info("tao-server %s listening on %s", __version__, ", ".join(addresses))
    try:
        server.run(sockets=listeners.plain)
    finally:
        for sock in listeners.tls:
            sock.close()
    return 0 if server.started else 1


def _not_a_websocket_opening(record: logging.LogRecord) -> bool:
    message = str(record.msg)
    return not (message.startswith('%s - "WebSocket %s"') or message in ("connection open", "connection closed"))


def _tls_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.tls_cert is None:
        return None
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        _fail(f"cannot use --tls-cert {settings.tls_cert} / --tls-key {settings.tls_key}: {exc}")
    return context


def _lock_data_dir(data_dir: Path) -> None:
    """The data dir, made when missing, and held until the process ends: one daemon per data dir.

    The lock is held by a bare descriptor that nothing closes: a file object would close it (and
    release the lock) when collected, which can come while the process still lives, winding down.
    """
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(data_dir / "daemon.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        _fail(f"cannot use the data dir {data_dir}: {exc.strerror} (tao-server runs as uid {os.getuid()})")
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(descriptor, 64, 0).decode(errors="replace").strip()
        _fail(f"another tao-server (pid {holder or '?'}) already uses the data dir {data_dir}")
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, str(os.getpid()).encode(), 0)


def _check_socket_path(path: Path) -> None:
    """Refuse a path that holds something other than a socket, or a socket another daemon answers on;
    a stale socket (its daemon died) is removed."""
    if not (path.exists() or path.is_symlink()):
        return
    if not stat.S_ISSOCK(path.lstat().st_mode):
        _fail(f"{path} exists and is not a socket; remove it or choose another --socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()  # a stale socket from a daemon that died
    else:
        _fail(f"another daemon already listens on {path}")
    finally:
        probe.close()


def _unix_socket(path: Path, mode: int, gid: int | None) -> socket.socket:
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
        _fail(f"cannot listen on {path}: {exc.strerror}")
    try:
        if gid is not None:
            os.chown(path, -1, gid)
        path.chmod(mode)
        sock.listen(512)
    except OSError as exc:
        path.unlink(missing_ok=True)
        _fail(f"cannot set up the socket {path}: {exc.strerror}")
    return sock


def _group_id(group: str) -> int:
    import grp

    try:
        return int(group) if group.isdecimal() else grp.getgrnam(group).gr_gid
    except KeyError:
        _fail(f"--socket-group {group!r}: no such group; create it (groupadd {group}) or name another")
        raise


def _tcp_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror}")
    sock.listen(512)
    return sock


def _fail(message: str) -> NoReturn:
    print(f"tao-server: error: {message}", file=sys.stderr)
    sys.exit(2)

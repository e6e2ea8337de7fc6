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

if TYPE_CHECKING:  # the settings stack is imported only once the flags are read
    import ssl

    from pydantic import ValidationError

    from tao_server.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tao-server", description="The TAO launcher daemon: runs TAO tasks in Docker for the `tao` CLI and HTTP clients."
    )
    parser.add_argument("--data-dir", type=Path, help="SQLite database and job logs (default: $TAO_DATA_DIR or ~/.local/share/tao)")
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
    parser.add_argument("--tls-cert", type=Path, help="serve TCP over TLS with this certificate (PEM); needs --tls-key")
    parser.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM)")
    parser.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="allow a TCP address other than loopback without TLS (tokens still travel in clear)",
    )
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
    parser.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--version", action="version", version=f"tao-server {__version__}")
    return parser


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
    import asyncio

    import uvicorn

    from tao_server import backends, memory
    from tao_server.app import create_app, daemon_id, end_streams
    from tao_server.errors import TaoError

    memory.tune()
    # The database and logs hold job arguments and environments: for this user's eyes only.
    os.umask(0o077)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _lock_data_dir(settings.data_dir)
    try:
        backend = backends.connect(settings, daemon_id(settings.data_dir))
    except TaoError as exc:
        _fail(exc.message)
    tls = _tls_context(settings)
    sockets: list[socket.socket] = []
    tls_sockets: list[socket.socket] = []
    addresses: list[str] = []
    if settings.socket is not None:
        sockets.append(_unix_socket(settings.socket, settings.socket_mode_bits, settings.socket_group))
        addresses.append(f"unix://{settings.socket}")
    if settings.tcp_port is not None:
        host = settings.tcp_address
        tcp = _tcp_socket(host, settings.tcp_port)
        (tls_sockets if tls else sockets).append(tcp)
        addresses.append(f"{'https' if tls else 'http'}://{host}:{tcp.getsockname()[1]}")
    try:
        app = create_app(settings, backend=backend, addresses=addresses)
    except TaoError as exc:
        _fail(exc.message)
    from tao_server import stopping
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

    def remove_socket_file() -> None:
        if settings.socket is not None:
            settings.socket.unlink(missing_ok=True)

    def stop() -> None:
        manager.stopping()
        stopping.start_watchdog(settings.stop_timeout, last_words=remove_socket_file)
        # Once uvicorn has closed the listeners and told each connection to finish (its next await):
        # a client whose stream ends then finds the daemon gone, and waits for the next one.
        asyncio.get_running_loop().call_soon(end_streams, app)

    server = TlsAwareServer(config, tls_sockets, tls, on_ready=lambda: manager.ready(addresses), on_stopping=stop)
    logging.getLogger("tao_server").info("tao-server %s listening on %s", __version__, ", ".join(addresses))
    try:
        server.run(sockets=sockets)
    finally:
        for sock in tls_sockets:
            sock.close()
        remove_socket_file()
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
    """One daemon per data dir, until its process ends.

    The lock is held by a bare descriptor that nothing closes: a file object would close it (and
    release the lock) when collected, which can come while the process still lives, winding down.
    """
    path = data_dir / "daemon.lock"
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(descriptor, 64, 0).decode(errors="replace").strip()
        _fail(f"another tao-server (pid {holder or '?'}) already uses the data dir {data_dir}")
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, str(os.getpid()).encode(), 0)


def _unix_socket(path: Path, mode: int, group: str | None) -> socket.socket:
    """Listen on `path`; who may connect is the file's mode and group (a `tao` group on a shared box)."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True)
        path.parent.chmod(0o755 if mode & 0o077 else 0o700)
    if path.exists() or path.is_symlink():
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
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # nobody else may connect before the mode below is in place
    try:
        sock.bind(str(path))
    finally:
        os.umask(old_umask)
    if group is not None:
        os.chown(path, -1, _group_id(group))
    path.chmod(mode)
    sock.listen(512)
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

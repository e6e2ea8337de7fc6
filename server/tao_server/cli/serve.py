"""`tao-server [flags]`: flags -> Settings -> the checked storage, backend and sockets -> uvicorn, until stopped."""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, NoReturn

from tao_server import __version__
from tao_server.errors import TaoError

if TYPE_CHECKING:  # the settings stack is imported only once the flags are read
    import ssl

    from fastapi import FastAPI
    from pydantic import ValidationError
    from sqlalchemy.engine import Engine

    from tao_server.backends import Backend
    from tao_server.runtime.sockets import Listeners
    from tao_server.settings import Settings


def main(argv: list[str]) -> int:
    """`tao-server [flags]`: read the settings, set up logging, serve until stopped."""
    from pydantic import ValidationError

    from tao_server.cli import flags
    from tao_server.settings import Settings

    args = flags.parser().parse_args(argv)
    try:
        settings = Settings(**flags.overrides(args))
    except ValidationError as exc:
        _fail(_first_problem(exc))
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if settings.log_level != "debug":
        # uvicorn logs each websocket's opening at INFO: a port-forward opens one per connection.
        logging.getLogger("uvicorn.error").addFilter(_not_a_websocket_opening)
    return serve(settings)


def _first_problem(exc: ValidationError) -> str:
    """The first thing wrong with the settings, naming the setting as a flag and as a variable."""
    from tao_server.settings import settings_catalog

    error = exc.errors()[0]
    if error["type"] == "invalid_settings":  # a rule across settings (settings.py): its message says it all
        return str(error["msg"])
    name = str(error["loc"][0]) if error["loc"] else ""
    named = [setting for setting in settings_catalog() if setting.key.rpartition(".")[2] == name and setting.section == _section(exc)]
    where = f"{named[0].flag} (${named[0].env})" if named and named[0].flag else f"${named[0].env}" if named else name
    return f"invalid setting {where}: {error['msg']}"


def _section(exc: ValidationError) -> str:
    """The backend whose settings model raised `exc` ("" for the daemon's own)."""
    return exc.title.removesuffix("Settings").lower() if exc.title in ("DockerSettings", "SlurmSettings") else ""


def serve(settings: Settings) -> int:
    """Check everything that can be checked, then create the Unix socket, last, and serve.

    The data dir, the database, the backend, TLS, the socket's group and path, the TCP ports, the
    manifest and the policy are all checked first: a daemon that cannot start says why in one line
    and leaves no socket behind, where a client could take it for a daemon that is down.
    """
    from tao_server.app import create_app
    from tao_server.runtime import memory, sockets

    memory.tune()
    # The database and logs hold job arguments and environments: for this user's eyes only.
    os.umask(0o077)
    try:
        sockets.lock_data_dir(settings.data_dir)
        database, backend = _open_storage_and_backend(settings)
        tls = sockets.tls_context(settings)
        group = sockets.group_id(settings.socket_group) if settings.socket_group is not None else None
        if settings.socket is not None:
            sockets.check_socket_path(settings.socket)
        listeners = sockets.tcp_listeners(settings, tls)
        addresses = ([f"unix://{settings.socket}"] if settings.socket is not None else []) + listeners.addresses
        app = create_app(settings, backend=backend, addresses=addresses, database=database)
        if settings.socket is not None:
            listeners.plain.insert(0, sockets.unix_socket(settings.socket, settings.socket_mode_bits, group))
    except TaoError as exc:
        _fail(exc.message)
    try:
        return _run(settings, app, listeners, tls, addresses)
    finally:
        _remove_socket_file(settings)


def _remove_socket_file(settings: Settings) -> None:
    if settings.socket is not None:
        settings.socket.unlink(missing_ok=True)


def _open_storage_and_backend(settings: Settings) -> tuple[Engine, Backend]:
    """The checked database, then the backend: a database that cannot be used stops the daemon before the engine is asked."""
    from tao_server import backends, db
    from tao_server.app import daemon_id

    database = db.open_checked(settings.db_path)
    return database, backends.connect(settings, daemon_id(settings.data_dir))


def _run(settings: Settings, app: FastAPI, listeners: Listeners, tls: ssl.SSLContext | None, addresses: list[str]) -> int:
    import asyncio

    import uvicorn

    from tao_server.app import end_streams
    from tao_server.runtime import stopping
    from tao_server.runtime.listeners import WS_MAX_MESSAGE, HttpProtocol, TlsAwareServer, WebSocketProtocol
    from tao_server.runtime.service_manager import ServiceManager

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


def _fail(message: str) -> NoReturn:
    print(f"tao-server: error: {message}", file=sys.stderr)
    sys.exit(2)

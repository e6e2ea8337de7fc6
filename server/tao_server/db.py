"""The SQLite engine, sessions, and the check and Alembic upgrade that run at start-up. Connections
open the database file read-write and never create it: runtime/db_watch.py tells a file deleted under the daemon."""

from __future__ import annotations

import os
import sqlite3
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from alembic.util.exc import CommandError
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError
from sqlmodel import create_engine

from tao_server.errors import DatabaseGone, DatabaseUnusable

FILE_NAME = "tao.db"  # in the data dir
RESTORE = 'restore it from a backup (the admin guide\'s "Upgrades and backups" says how)'


def make_engine(db_path: Path) -> Engine:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    if not db_path.exists():
        sqlite3.connect(db_path).close()  # a new database: the one file connections open from here on

    def connect() -> sqlite3.Connection:
        # Read-write, never create: a connection opened after the file was deleted under the daemon
        # must fail, not start an empty database in its place that a restart would take for the real one.
        try:
            return sqlite3.connect(f"file:{quote(str(db_path))}?mode=rw", uri=True, check_same_thread=False, timeout=30)
        except sqlite3.OperationalError:
            if db_path.exists():
                raise
            raise DatabaseGone(f"the job database {db_path} was deleted while the daemon ran; restart tao-server") from None

    engine = create_engine(
        f"sqlite:///{db_path}",
        creator=connect,
        # SQLite serialises writers and each connection keeps its own page cache: a few
        # connections serve every thread, and keep the daemon's memory flat.
        pool_size=4,
        max_overflow=8,
        pool_timeout=60,
    )

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        # WAL lets log followers and list calls read while a job's state is being written.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA cache_size=-1024")  # KiB per connection
        cursor.close()

    return engine


def migrations_dir() -> Path:
    """Alembic's scripts, installed as the package tao_server.migrations."""
    return Path(str(resources.files("tao_server.migrations")))


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision; the app never calls create_all."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def open_checked(db_path: Path) -> Engine:
    """The job table's engine, its schema at the newest revision; DatabaseUnusable, naming the file, when it cannot be used.

    tao-server calls this before it creates its socket: a damaged, unreadable or too new database
    stops it with one line, before anything says it listens.
    """
    try:
        with open(db_path, "rb"):
            pass
    except FileNotFoundError:
        pass  # a new data dir: the table is made below
    except OSError as exc:
        raise DatabaseUnusable(
            f"cannot read the job table {db_path}: {exc.strerror} (tao-server runs as uid {os.getuid()}: "
            f"give the file back to it, or {RESTORE})"
        ) from None
    engine = make_engine(db_path)
    try:
        _check(engine, db_path)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _check(engine: Engine, db_path: Path) -> None:
    try:
        with engine.connect() as connection:
            problem = connection.exec_driver_sql("PRAGMA quick_check(1)").scalar()
        if problem != "ok":
            # SQLite's report spans lines ("*** in database main ***\nPage 2: ..."): one line, its substance.
            found = " ".join(str(problem).replace("*** in database main ***", "").split())
            raise DatabaseUnusable(f"the job table {db_path} is damaged ({found}): {RESTORE}")
        upgrade(engine)
    except DatabaseError as exc:
        raise DatabaseUnusable(f"the job table {db_path} cannot be used ({exc.orig}): {RESTORE}") from None
    except CommandError as exc:
        raise DatabaseUnusable(
            f"the job table {db_path} cannot be brought to this release's schema ({exc}): "
            f"a newer tao-server wrote it? run that release, or {RESTORE}"
        ) from None

"""The SQLite engine, sessions, and the Alembic upgrade that runs at start-up. Connections open the
database file read-write and never create it: db_watch.py tells a file deleted under the daemon."""

from __future__ import annotations

import sqlite3
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import create_engine

from tao_server.errors import DatabaseGone

FILE_NAME = "tao.db"  # in the data dir


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

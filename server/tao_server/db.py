"""The SQLite engine, sessions, and the Alembic upgrade that runs at start-up."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import create_engine

FILE_NAME = "tao.db"  # in the data dir


def make_engine(db_path: Path) -> Engine:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        f"sqlite:///{db_path}",
        connect_args={"check_same_thread": False, "timeout": 30},
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

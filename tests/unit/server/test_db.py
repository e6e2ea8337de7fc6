"""The job table checked before the daemon listens (db.open_checked): real SQLite files, one line for each way it can be unusable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text

from tao_server import db
from tao_server.errors import DatabaseUnusable


def test_a_new_data_dir_gets_a_table_at_the_newest_revision(tmp_path: Path) -> None:
    engine = db.open_checked(tmp_path / "tao.db")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()


def test_random_bytes_are_refused_in_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tao.db"
    path.write_bytes(os.urandom(8192))
    with pytest.raises(DatabaseUnusable) as refused:
        db.open_checked(path)
    message = refused.value.message
    assert "\n" not in message and str(path) in message and "restore it from a backup" in message
    assert "Upgrades and backups" in message


def test_a_damaged_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tao.db"
    db.open_checked(path).dispose()
    data = bytearray(path.read_bytes())
    page = 4096
    data[page : 2 * page] = os.urandom(page)  # the second page: the table's own
    path.write_bytes(bytes(data))
    with pytest.raises(DatabaseUnusable) as refused:
        db.open_checked(path)
    assert str(path) in refused.value.message and "\n" not in refused.value.message


def test_a_table_a_newer_release_wrote_is_refused_saying_so(tmp_path: Path) -> None:
    path = tmp_path / "tao.db"
    engine = db.open_checked(path)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'ffffffffffff'"))
    engine.dispose()
    with pytest.raises(DatabaseUnusable) as refused:
        db.open_checked(path)
    assert "a newer tao-server wrote it?" in refused.value.message and "ffffffffffff" in refused.value.message


def test_a_directory_in_its_place_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "tao.db").mkdir()
    with pytest.raises(DatabaseUnusable) as refused:
        db.open_checked(tmp_path / "tao.db")
    assert refused.value.message.startswith(f"cannot read the job table {tmp_path / 'tao.db'}: Is a directory")

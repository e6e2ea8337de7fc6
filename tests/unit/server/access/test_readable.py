"""Could the caller read this path as themselves (tao_server.access.readable)?"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tao_server.access import readable
from tao_server.access.caller import Caller

STRANGER = Caller(uid=54321, gid=54321, admin=False)
OWNER = Caller(uid=54322, gid=54322, admin=False)


@pytest.fixture
def tree() -> Iterator[Path]:
    tmp_path = Path(tempfile.mkdtemp(prefix="tao-access-"))  # pytest's own temp root is closed to other users
    tmp_path.chmod(0o755)
    (tmp_path / "open").mkdir(mode=0o755)
    (tmp_path / "closed").mkdir(mode=0o700)
    (tmp_path / "closed" / "inner").mkdir(mode=0o755)  # readable on its own, not through its parent
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "file.txt").chmod(0o644)
    (tmp_path / "private.txt").write_text("x")
    (tmp_path / "private.txt").chmod(0o600)
    yield tmp_path
    shutil.rmtree(tmp_path)


@pytest.mark.parametrize("check", ["kernel", "bits"])
def test_every_component_is_checked_as_the_caller(tree: Path, check: str, monkeypatch: pytest.MonkeyPatch):
    if check == "kernel" and os.geteuid() != 0:
        pytest.skip("switching to another uid needs root")
    if check == "bits":
        monkeypatch.setattr(readable.os, "geteuid", lambda: 1000)  # a daemon that is not root reads the bits
    assert not readable.unreadable(str(tree / "open"), STRANGER)
    assert not readable.unreadable(str(tree / "file.txt"), STRANGER)
    assert readable.unreadable(str(tree / "closed"), STRANGER)
    assert readable.unreadable(str(tree / "closed" / "inner"), STRANGER)
    assert readable.unreadable(str(tree / "private.txt"), STRANGER)


@pytest.mark.parametrize("check", ["kernel", "bits"])
def test_owners_and_group_members_get_their_classes(tree: Path, check: str, monkeypatch: pytest.MonkeyPatch):
    if check == "kernel" and os.geteuid() != 0:
        pytest.skip("switching to another uid needs root")
    if check == "bits":
        monkeypatch.setattr(readable.os, "geteuid", lambda: 1000)
    shared = tree / "closed" / "shared"
    shared.mkdir(mode=0o750)
    try:
        os.chown(tree / "closed", OWNER.uid, 0)  # type: ignore[arg-type]
        os.chown(shared, 0, 4242)
    except PermissionError:
        pytest.skip("chown needs root")
    member = Caller(uid=OWNER.uid, gid=OWNER.gid, admin=False, groups=(4242,))
    assert readable.unreadable(str(shared), OWNER)  # owner of the parent, but not in the group
    assert not readable.unreadable(str(shared), member)

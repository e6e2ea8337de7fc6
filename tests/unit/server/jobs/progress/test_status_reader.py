"""A status file read from its offset (jobs/progress/status_reader.py), beneath its mount and never through a link (access/beneath.py).

Real files in a temp dir: links, FIFOs, files replaced and truncated, lines without their newline.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from unittest import mock

import pytest

from tao_server.access import beneath
from tao_server.errors import UnsafeFile
from tao_server.jobs.progress import status_reader
from tao_server.jobs.progress.status_reader import MAX_LINE, READ_BUDGET, FileCursor, read


@pytest.fixture(params=["openat2", "walk"])
def resolution(request: pytest.FixtureRequest) -> object:
    """Every test runs with the kernel's openat2 and with the component-by-component walk it falls back to."""
    if request.param == "openat2":
        assert beneath._has_openat2(), "this kernel has openat2 (Linux 5.6+): the first way must be tested for real"
        yield request.param
        return
    with mock.patch.object(beneath, "_has_openat2", lambda: False):
        yield request.param


def cursor_for(source: Path, relative: str = "status.json") -> FileCursor:
    return FileCursor(shown=f"/results/{relative}", source=str(source), relative=relative)


def test_whole_lines_are_read_and_a_last_line_waits_for_its_newline(tmp_path: Path, resolution: object) -> None:
    status = tmp_path / "status.json"
    status.write_bytes(b'{"epoch": 1}\n{"epoch": 2}\n{"ep')
    cursor = cursor_for(tmp_path)
    assert read(cursor, owner=None).lines == [b'{"epoch": 1}', b'{"epoch": 2}']
    assert read(cursor, owner=None).lines == []
    with status.open("ab") as file:
        file.write(b'och": 3}\n')
    assert read(cursor, owner=None).lines == [b'{"epoch": 3}']
    assert cursor.offset == status.stat().st_size


def test_once_the_job_has_ended_a_last_line_without_newline_is_read_as_it_is(tmp_path: Path, resolution: object) -> None:
    (tmp_path / "status.json").write_bytes(b'{"epoch": 1}\n{"epoch": 2}')
    cursor = cursor_for(tmp_path)
    assert read(cursor, owner=None, final=True).lines == [b'{"epoch": 1}', b'{"epoch": 2}']


def test_a_link_to_a_file_outside_the_mount_is_never_read(tmp_path: Path, resolution: object) -> None:
    secret = tmp_path / "secret"
    secret.write_text('{"message": "the secret"}\n')
    results = tmp_path / "results"
    results.mkdir()
    (results / "status.json").symlink_to(secret)
    cursor = cursor_for(results)
    reading = read(cursor, owner=None, final=True)
    assert reading.lines == [] and reading.skipped == {"unsafe_file": 1}
    assert read(cursor, owner=None).skipped == {}  # counted once while it stays refused
    assert "symbolic link" in (cursor.refused or "")


def test_a_results_dir_swapped_for_a_link_is_not_followed(tmp_path: Path, resolution: object) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "status.json").write_text('{"epoch": 1}\n')
    mount = tmp_path / "mount"
    mount.mkdir()
    (mount / "train").symlink_to(elsewhere)
    reading = read(cursor_for(mount, "train/status.json"), owner=None)
    assert reading.lines == [] and reading.skipped == {"unsafe_file": 1}


def test_a_mount_source_swapped_for_a_link_after_submission_is_not_followed(tmp_path: Path, resolution: object) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "status.json").write_text('{"epoch": 1}\n')
    (tmp_path / "source").symlink_to(real)
    reading = read(cursor_for(tmp_path / "source"), owner=None)
    assert reading.lines == [] and reading.skipped == {"unsafe_file": 1}


def test_a_fifo_never_blocks_the_reader(tmp_path: Path, resolution: object) -> None:
    os.mkfifo(tmp_path / "status.json")
    done = threading.Event()
    found: list[status_reader.Reading] = []

    def reader() -> None:
        found.append(read(cursor_for(tmp_path), owner=None, final=True))
        done.set()

    threading.Thread(target=reader, daemon=True).start()
    assert done.wait(30), "reading a FIFO blocked"
    assert found[0].lines == [] and found[0].skipped == {"unsafe_file": 1}


def test_another_users_file_is_refused_for_a_users_job(tmp_path: Path, resolution: object) -> None:
    status = tmp_path / "status.json"
    status.write_text('{"epoch": 1}\n')
    os.chown(status, 4321, 4321)
    assert read(cursor_for(tmp_path), owner=1001).skipped == {"unsafe_file": 1}
    assert read(cursor_for(tmp_path), owner=4321).lines == [b'{"epoch": 1}']
    assert read(cursor_for(tmp_path), owner=None).lines == [b'{"epoch": 1}']  # an admin's job


def test_a_hard_link_to_another_users_file_is_refused(tmp_path: Path, resolution: object) -> None:
    theirs = tmp_path / "theirs"
    theirs.write_text('{"message": "theirs"}\n')
    os.chown(theirs, 4321, 4321)
    mine = tmp_path / "mine"
    mine.mkdir()
    os.link(theirs, mine / "status.json")
    assert read(cursor_for(mine), owner=1001).skipped == {"unsafe_file": 1}


def test_a_line_too_long_is_skipped_to_its_newline_however_long_it_grows(tmp_path: Path, resolution: object) -> None:
    status = tmp_path / "status.json"
    status.write_bytes(b'{"epoch": 1}\n' + b"x" * (MAX_LINE + 10))
    cursor = cursor_for(tmp_path)
    reading = read(cursor, owner=None)
    assert reading.lines == [b'{"epoch": 1}'] and reading.skipped == {"line_too_long": 1}
    with status.open("ab") as file:
        file.write(b"y" * (3 * MAX_LINE) + b'\n{"epoch": 2}\n')
    reading = read(cursor, owner=None)
    assert reading.lines == [b'{"epoch": 2}'] and reading.skipped == {}  # the same line: counted once


def test_one_read_takes_a_bounded_share_and_the_next_goes_on(tmp_path: Path, resolution: object) -> None:
    line = b'{"epoch": 1, "message": "' + b"m" * 1000 + b'"}\n'
    count = 3 * READ_BUDGET // len(line)
    (tmp_path / "status.json").write_bytes(line * count)
    cursor = cursor_for(tmp_path)
    reads = []
    while lines := read(cursor, owner=None).lines:
        reads.append(len(lines))
    assert sum(reads) == count and len(reads) >= 3


def test_a_file_truncated_mid_run_is_read_again_from_its_start_and_counted(tmp_path: Path, resolution: object) -> None:
    status = tmp_path / "status.json"
    status.write_bytes(b'{"epoch": 1}\n{"epoch": 2}\n')
    cursor = cursor_for(tmp_path)
    read(cursor, owner=None)
    status.write_bytes(b'{"epoch": 9}\n')
    reading = read(cursor, owner=None)
    assert reading.lines == [b'{"epoch": 9}'] and reading.skipped == {"truncated": 1}


def test_a_file_replaced_mid_run_is_read_from_its_start_and_counted(tmp_path: Path, resolution: object) -> None:
    status = tmp_path / "status.json"
    status.write_bytes(b'{"epoch": 1}\n')
    cursor = cursor_for(tmp_path)
    read(cursor, owner=None)
    replacement = tmp_path / "new"
    replacement.write_bytes(b'{"epoch": 1}\n{"epoch": 2}\n')
    replacement.rename(status)
    reading = read(cursor, owner=None)
    assert reading.lines == [b'{"epoch": 1}', b'{"epoch": 2}'] and reading.skipped == {"replaced": 1}


def test_a_file_present_before_the_job_is_read_from_its_end_then_and_rewritten_silently(tmp_path: Path, resolution: object) -> None:
    status = tmp_path / "status.json"
    status.write_bytes(b'{"epoch": 80}\n')  # a previous run's
    cursor = cursor_for(tmp_path)
    status_reader.baseline(cursor, owner=None)
    with status.open("ab") as file:
        file.write(b'{"epoch": 1}\n')  # this run appends (TAO's PyTorch logger)
    assert read(cursor, owner=None).lines == [b'{"epoch": 1}']
    status.write_bytes(b'{"epoch": 1}\n')  # or starts it afresh (TensorFlow's, append=False): nothing to count
    again = cursor_for(tmp_path)
    again.offset = again.base = 14
    assert read(again, owner=None).skipped == {}


def test_a_file_is_read_no_further_than_the_limit(tmp_path: Path, resolution: object) -> None:
    status = tmp_path / "status.json"
    status.write_bytes(b'{"epoch": 1}\n' * 100)
    cursor = cursor_for(tmp_path)
    with mock.patch.object(status_reader, "MAX_FILE", 13 * 10):
        reading = read(cursor, owner=None, final=True)
        assert len(reading.lines) == 10 and reading.skipped == {"file_too_large": 1}
        assert read(cursor, owner=None, final=True).lines == []


def test_subdirectories_lists_real_directories_only(tmp_path: Path, resolution: object) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "evaluate").mkdir()
    (tmp_path / "file").write_text("")
    (tmp_path / "linked").symlink_to(tmp_path / "train")
    root = beneath.open_root(str(tmp_path))
    try:
        assert beneath.subdirectories(root, "") == ["evaluate", "train"]
        with pytest.raises(UnsafeFile):
            beneath.subdirectories(root, "linked")
        assert beneath.exists(root, "linked") and beneath.exists(root, "file") and not beneath.exists(root, "nothing")
    finally:
        os.close(root)


def test_a_path_climbing_out_is_refused_before_any_lookup(tmp_path: Path) -> None:
    root = beneath.open_root(str(tmp_path))
    try:
        for path in ("../etc/passwd", "a/../../x", "/etc/passwd"):
            with pytest.raises(UnsafeFile):
                beneath.open_file(root, path, None)
    finally:
        os.close(root)

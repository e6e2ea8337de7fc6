"""One status file read from its byte offset: whole lines only, each bounded, the file too.

A `FileCursor` says where reading has got to (saved with the job's progress, so a restarted
daemon goes on from there) and which file that offset belongs to (device and inode). Each
`read` opens the file afresh beneath its mount's source (access/beneath.py) and takes what was
appended since, so that a file replaced or truncated mid-run is noticed: it is then read again
from its start (the store keeps one point per epoch and step, so nothing is doubled), and
counted. What a hostile or broken writer can do is bounded:

- a line longer than MAX_LINE is skipped up to its newline, however long it grows;
- a last line without its newline waits for it while the job runs, and is read as it is once
  the job has ended;
- one read parses at most READ_BUDGET bytes of lines (the follower comes back for the rest), and
  a file is read no further than MAX_FILE bytes.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from tao_server.access import beneath
from tao_server.errors import UnsafeFile

MAX_LINE = 64 * 1024
READ_BUDGET = 512 * 1024
MAX_FILE = 64 * 1024 * 1024
_CHUNK = 256 * 1024  # larger than MAX_LINE: a line that fits always has its newline within one chunk


@dataclass
class FileCursor:
    """Where reading one status file has got to."""

    shown: str  # the file as the container sees it
    source: str  # its mount's source on the host
    relative: str  # beneath the source
    offset: int = 0
    base: int = 0  # where reading started (the file's size when the job started): nothing before it is the job's
    device: int | None = None
    inode: int | None = None
    skipping: bool = False  # inside a line too long: its bytes are dropped up to its newline
    refused: str | None = None  # why the file may not be read, while it may not
    exhausted: bool = False  # read as far as MAX_FILE: no further

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileCursor:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


@dataclass
class Reading:
    """What one read found: whole lines (without their newlines), and what it skipped by reason."""

    lines: list[bytes] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    moved: bool = False  # the cursor changed: it is to be saved

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def baseline(cursor: FileCursor, owner: int | None) -> None:
    """Start `cursor` at the end of the file as it is now (a file from before the job: its lines are not the job's)."""
    try:
        fd = _open(cursor, owner)
    except (OSError, UnsafeFile):
        return  # not there, or not readable now: whatever appears is the job's, from its start
    try:
        found = os.fstat(fd)
    finally:
        os.close(fd)
    cursor.offset = cursor.base = found.st_size
    cursor.device, cursor.inode = found.st_dev, found.st_ino


def read(cursor: FileCursor, owner: int | None, final: bool = False) -> Reading:
    """The whole lines appended since the cursor, and the cursor moved past them.

    `owner`: whose the file must be (None: anyone's). `final`: the job has ended, so read to the
    end (within MAX_FILE), and take a last line without its newline as it is.
    """
    reading = Reading()
    if cursor.exhausted:
        return reading
    try:
        fd = _open(cursor, owner)
    except FileNotFoundError:
        return reading
    except (OSError, UnsafeFile) as exc:
        why = exc.message if isinstance(exc, UnsafeFile) else f"cannot be read: {exc.strerror}"
        if cursor.refused != why:  # counted once per refusal, not once per look
            cursor.refused, reading.moved = why, True
            reading.skip("unsafe_file" if isinstance(exc, UnsafeFile) else "unreadable")
        return reading
    try:
        if cursor.refused is not None:
            cursor.refused, reading.moved = None, True
        found = os.fstat(fd)
        _follow_file(cursor, found, reading)
        _read_lines(fd, cursor, found.st_size, final, reading)
    finally:
        os.close(fd)
    return reading


def _open(cursor: FileCursor, owner: int | None) -> int:
    root = beneath.open_root(cursor.source)
    try:
        return beneath.open_file(root, cursor.relative, owner)
    finally:
        os.close(root)


def _follow_file(cursor: FileCursor, found: os.stat_result, reading: Reading) -> None:
    """Notice a file replaced (another inode) or truncated (shorter than the offset): start it again from the top."""
    replaced = cursor.inode is not None and (found.st_dev, found.st_ino) != (cursor.device, cursor.inode)
    if replaced or found.st_size < cursor.offset:
        if cursor.offset > cursor.base:  # the job's own lines were read from it: worth saying
            reading.skip("replaced" if replaced else "truncated")
        cursor.offset = cursor.base = 0
        cursor.skipping = False
        reading.moved = True
    if (cursor.device, cursor.inode) != (found.st_dev, found.st_ino):
        cursor.device, cursor.inode = found.st_dev, found.st_ino
        reading.moved = True


def _read_lines(fd: int, cursor: FileCursor, size: int, final: bool, reading: Reading) -> None:
    taken = 0
    while cursor.offset < size and (final or taken < READ_BUDGET):
        if cursor.offset >= MAX_FILE:
            cursor.exhausted, reading.moved = True, True
            reading.skip("file_too_large")
            return
        wanted = min(_CHUNK, size - cursor.offset, MAX_FILE - cursor.offset, _CHUNK if final else READ_BUDGET - taken)
        data = os.pread(fd, wanted, cursor.offset)
        if not data:
            return
        at_end = final and cursor.offset + len(data) >= size
        used = _split(data, cursor, reading, at_end)
        if used == 0:
            return  # a last line waiting for its newline
        cursor.offset += used
        taken += 0 if cursor.skipping else used  # dropping a long line costs a scan for its newline, not a parse
        reading.moved = True


def _split(data: bytes, cursor: FileCursor, reading: Reading, at_end: bool) -> int:
    """Take the whole lines from `data` into `reading`; how many bytes of it were used up."""
    start = 0
    if cursor.skipping:
        newline = data.find(b"\n")
        if newline < 0:
            return len(data)
        start, cursor.skipping = newline + 1, False
    while (newline := data.find(b"\n", start)) >= 0:
        if newline - start > MAX_LINE:
            reading.skip("line_too_long")
        else:
            reading.lines.append(data[start:newline])
        start = newline + 1
    rest = len(data) - start
    if rest > MAX_LINE:
        reading.skip("line_too_long")
        cursor.skipping = True
        return len(data)
    if at_end and rest:
        reading.lines.append(data[start:])
        return len(data)
    return start

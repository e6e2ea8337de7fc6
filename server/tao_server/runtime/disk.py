"""What a write the disk refused means, and what to do about it: no space, a read-only file or
filesystem, permission denied. StorageFull's messages say which, never "free space" for a disk
that has room."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_NO_SPACE = "free space on that disk"
_READ_ONLY_FILESYSTEM = "its filesystem is mounted read-only: remount it read-write"


def advice(path: Path, error_number: int | None) -> str:
    """What to do about a write to `path` that failed with `error_number` (an OSError's)."""
    if error_number in (errno.ENOSPC, errno.EFBIG):
        return _NO_SPACE
    if error_number == errno.EDQUOT:
        return "the disk quota of the daemon's account is used up: free space or raise the quota"
    if error_number == errno.EROFS:
        return _READ_ONLY_FILESYSTEM
    if error_number in (errno.EACCES, errno.EPERM):
        return f"the daemon's account may not write it: {_permissions(path)}"
    return f"check {path} and the disk that holds it"


def database_advice(path: Path, reason: str) -> str:
    """What to do about SQLite refusing a write to the database at `path`, from its `reason` and the file itself."""
    if "full" in reason:
        return _NO_SPACE
    if _read_only_filesystem(path.parent):
        return _READ_ONLY_FILESYSTEM
    if path.exists() and not os.access(path, os.W_OK):
        return f"the file is read-only to the daemon's account: {_permissions(path)}"
    if not os.access(path.parent, os.W_OK):  # SQLite writes its journal beside the file
        return f"its directory is not writable by the daemon's account: {_permissions(path.parent)}"
    if "readonly" in reason or "read-only" in reason:
        return f"SQLite opened it read-only: {_permissions(path)}"
    return f"check {path} and the disk that holds it"


def _read_only_filesystem(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _permissions(path: Path) -> str:
    """ "mode 0444, owner uid 0": what decides who may write `path`."""
    try:
        found = path.stat()
    except OSError as exc:
        return f"{path} cannot be looked at ({exc.strerror})"
    return f"{path} has mode {stat.S_IMODE(found.st_mode):04o}, owner uid {found.st_uid}; the daemon runs as uid {os.geteuid()}"

"""Files a job wrote, opened beneath its mount's source and never through a link that leads out of it.

The daemon (often root) reads files that tasks write into their mounts (the status file of
jobs/progress/tracker.py, a spec file), in directories the job's user owns and may change at any
moment: a symlink swapped in between a check and an open, a FIFO that blocks a reader forever,
a device node whose open has effects, a hard link to someone else's file. So:

- The path is resolved by the kernel in one call, openat2(2) with RESOLVE_NO_SYMLINKS |
  RESOLVE_NO_MAGICLINKS (and RESOLVE_BENEATH below the mount's source): no link is followed
  anywhere, and nothing climbs out with `..`. Where openat2 is missing (Linux before 5.6, or a
  seccomp filter that refuses it) a walk opens one component at a time with O_NOFOLLOW.
- The file is opened O_PATH first, which has no effect on what it names (a FIFO does not block,
  a device is not opened), and checked to be a regular file of the job's owner (a hard link to
  another user's file is refused). Only then is it reopened for reading, through
  /proc/self/fd, and checked to be the same file.

The mount's source itself is a resolved path (jobs/launch_options.py keeps sources resolved), so
a link found on it now is a swap made after the job was submitted, and is refused too.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import stat

from tao_server.errors import UnsafeFile

SYS_OPENAT2 = 437  # one number on every architecture: openat2 came after the syscall tables were unified
AT_FDCWD = -100
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
_NO_LINKS = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
_PATH_FLAGS = os.O_PATH | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
MAX_ENTRIES = 256  # subdirectories looked at in one directory: a results dir holds a few


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def open_root(path: str) -> int:
    """An O_PATH descriptor of the directory `path` (absolute), reached without following any link."""
    if not os.path.isabs(path):
        raise UnsafeFile(f"{path!r} is not an absolute path")
    return _open(AT_FDCWD, path, _PATH_FLAGS | os.O_DIRECTORY, beneath=False)


def open_file(root: int, relative: str, owner: int | None, shared: bool = False) -> int:
    """A descriptor open for reading on the regular file `relative` beneath `root` (from `open_root`).

    `owner`: the uid the file must belong to (the job's owner); None: anyone's (an admin's job).
    `shared`: a file every user may read will do too (a team's spec). FileNotFoundError when it is
    not there (yet); UnsafeFile when it is there but must not be read.
    """
    held = _open(root, relative, _PATH_FLAGS, beneath=True)
    try:
        found = os.fstat(held)
        _check_file(relative, found, None if shared and found.st_mode & stat.S_IROTH else owner)
        fd = os.open(f"/proc/self/fd/{held}", _READ_FLAGS)
    finally:
        os.close(held)
    opened = os.fstat(fd)
    if (opened.st_dev, opened.st_ino) != (found.st_dev, found.st_ino):  # cannot happen: the same open file
        os.close(fd)
        raise UnsafeFile(f"{relative}: changed while it was opened")
    return fd


def exists(root: int, relative: str) -> bool:
    """Whether anything is at `relative` beneath `root`: also a link (reading it is refused), never through one."""
    try:
        os.close(_open(root, relative, _PATH_FLAGS, beneath=True))
    except UnsafeFile:
        return True  # a link, or a path through one: there is something there, which no read will follow
    except OSError:
        return False
    return True


def subdirectories(root: int, relative: str) -> list[str]:
    """The names of the real directories (no links) in `relative` beneath `root`; at most MAX_ENTRIES, sorted."""
    held = _open(root, relative, _PATH_FLAGS | os.O_DIRECTORY, beneath=True)
    try:
        fd = os.open(f"/proc/self/fd/{held}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    finally:
        os.close(held)
    names = []
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    names.append(entry.name)
                if len(names) >= MAX_ENTRIES:
                    break
    finally:
        os.close(fd)
    return sorted(names)


def _check_file(relative: str, found: os.stat_result, owner: int | None) -> None:
    if stat.S_ISLNK(found.st_mode):  # the walk's O_NOFOLLOW opens a final link itself
        raise UnsafeFile(f"{relative}: a symbolic link, which is never followed")
    if not stat.S_ISREG(found.st_mode):
        raise UnsafeFile(f"{relative}: not a regular file (a FIFO, socket, device or directory)")
    if owner is not None and found.st_uid != owner:
        raise UnsafeFile(f"{relative}: belongs to uid {found.st_uid}, not to the job's owner (uid {owner})")


def _open(dirfd: int, path: str, flags: int, *, beneath: bool) -> int:
    parts = [part for part in path.split("/") if part]
    if any(part in (".", "..") for part in parts) or (beneath and path.startswith("/")):
        raise UnsafeFile(f"{path!r}: not a plain path beneath the mount")
    if _has_openat2():
        return _openat2(dirfd, path or ".", flags, _NO_LINKS | (RESOLVE_BENEATH if beneath else 0))
    return _walk(dirfd if beneath else AT_FDCWD, parts, flags, path)


def _openat2(dirfd: int, path: str, flags: int, resolve: int) -> int:
    how = _OpenHow(flags, 0, resolve)
    for _ in range(3):  # EAGAIN: a rename elsewhere raced the lookup; the kernel asks for another try
        fd = _syscall(SYS_OPENAT2, dirfd, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how))
        if fd >= 0:
            return int(fd)
        error = ctypes.get_errno()
        if error != errno.EAGAIN:
            break
    raise _refusal(error, path)


def _walk(dirfd: int, parts: list[str], flags: int, path: str) -> int:
    """openat2's resolution done by hand: one component at a time, none of them a link."""
    current = os.open("/", _PATH_FLAGS | os.O_DIRECTORY) if dirfd == AT_FDCWD else os.dup(dirfd)
    try:
        for part in parts[:-1]:
            try:
                following = os.open(part, _PATH_FLAGS | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=current)
            except OSError as exc:
                raise _refusal(exc.errno or 0, path) from None
            os.close(current)
            current = following
        if not parts:
            return os.dup(current)
        try:
            return os.open(parts[-1], flags | os.O_NOFOLLOW, dir_fd=current)
        except OSError as exc:
            raise _refusal(exc.errno or 0, path) from None
    finally:
        os.close(current)


def _refusal(error: int, path: str) -> Exception:
    """What a failed lookup means: not there (FileNotFoundError), a link or an escape (UnsafeFile), or the OS's word."""
    if error == errno.ENOENT:
        return FileNotFoundError(error, os.strerror(error), path)
    if error in (errno.ELOOP, errno.EXDEV, errno.ENOTDIR):
        return UnsafeFile(f"{path}: leads through a symbolic link, out of the mount or through a file; links are never followed")
    return OSError(error, os.strerror(error), path)


@functools.cache
def _has_openat2() -> bool:
    """Whether this kernel (and any seccomp filter around the daemon) lets openat2 through."""
    try:
        os.close(_openat2(AT_FDCWD, "/", _PATH_FLAGS | os.O_DIRECTORY, _NO_LINKS))
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EPERM):
            return False
        raise
    return True


def _syscall(*args: object) -> int:
    libc = _libc()
    return int(libc.syscall(*(ctypes.c_long(a) if isinstance(a, int) else a for a in args)))


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc

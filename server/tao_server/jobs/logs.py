"""Per-job log files: one writer per job appends, any number of readers replay and follow.

Readers never touch Docker: they read the file the job's writer fills, so a reader can attach late,
reconnect at an offset, or read a job that finished long ago, all the same way. An offset past the
largest file the filesystem can hold (ext4: 16 TiB) is simply past the end: it reads no bytes.
"""

from __future__ import annotations

import asyncio
import errno
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from tao_server import disk, memory
from tao_server.errors import StorageFull

READ_CHUNK = 256 * 1024


class Heartbeat:
    """Yielded by `follow` after a quiet interval, so a stream can show it is alive."""


HEARTBEAT = Heartbeat()


class LogStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._followers = 0

    def path(self, job_id: str) -> Path:
        return self.root / f"{job_id}.log"

    def create(self, job_id: str) -> bool:
        """An empty log for a new job; False when one was there already (it is left as it is). StorageFull when the disk refuses."""
        path = self.path(job_id)
        try:
            path.touch(exist_ok=False)
        except FileExistsError:
            return False
        except OSError as exc:
            raise StorageFull(f"cannot create the job's log {path}: {exc.strerror}; {disk.advice(path, exc.errno)}") from None
        return True

    def discard(self, job_id: str) -> None:
        """Remove the log of a job that was never recorded (its submission was refused)."""
        self.path(job_id).unlink(missing_ok=True)

    def size(self, job_id: str) -> int:
        try:
            return self.path(job_id).stat().st_size
        except FileNotFoundError:
            return 0

    def writer(self, job_id: str) -> LogWriter:
        return LogWriter(self, job_id)

    def chunks(self, job_id: str, offset: int = 0) -> Iterator[bytes]:
        """The log from byte `offset` as it is now, a chunk at a time; nothing for a job without one."""
        try:
            with open(self.path(job_id), "rb") as f:
                if not _seek(f, offset):
                    return
                while chunk := f.read(READ_CHUNK):
                    yield chunk
        except FileNotFoundError:
            return

    def notify(self, job_id: str) -> None:
        """Wake the followers of `job_id` (new bytes, or the job ended)."""
        with self._lock:
            waiters = self._waiters.get(job_id)
            if not waiters:
                return
            woken = list(waiters)
            waiters.clear()
        for loop, event in woken:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the follower's loop has closed
                pass

    async def follow(
        self,
        job_id: str,
        offset: int,
        finished: Callable[[], bool],
        heartbeat: float | None,
    ) -> AsyncIterator[bytes | Heartbeat]:
        """Bytes from `offset` on, until `finished()` is true and the file is drained."""
        loop = asyncio.get_running_loop()
        self._followers += 1
        try:
            async for item in self._follow(loop, job_id, offset, finished, heartbeat):
                yield item
        finally:
            self._followers -= 1
            if self._followers == 0:
                memory.release()

    async def _follow(
        self,
        loop: asyncio.AbstractEventLoop,
        job_id: str,
        offset: int,
        finished: Callable[[], bool],
        heartbeat: float | None,
    ) -> AsyncIterator[bytes | Heartbeat]:
        with open(self.path(job_id), "rb") as f:
            # An offset no file can reach reads nothing, ever: the follower just waits for the end.
            read: Callable[[], bytes] = (lambda: f.read(READ_CHUNK)) if _seek(f, offset) else (lambda: b"")
            while True:
                chunk = read()
                if chunk:
                    yield chunk
                    continue
                waiter = (loop, asyncio.Event())
                with self._lock:
                    self._waiters.setdefault(job_id, set()).add(waiter)
                try:
                    # Re-check after registering, so a write or the end in between is not missed.
                    chunk = read()
                    if chunk:
                        yield chunk
                        continue
                    if finished():
                        chunk = read()
                        if not chunk:
                            return
                        yield chunk
                        continue
                    try:
                        await asyncio.wait_for(waiter[1].wait(), heartbeat)
                    except TimeoutError:
                        yield HEARTBEAT
                finally:
                    with self._lock:
                        waiters = self._waiters.get(job_id)
                        if waiters is not None:
                            waiters.discard(waiter)
                            if not waiters:
                                del self._waiters[job_id]


def _seek(f: BinaryIO, offset: int) -> bool:
    """Move to `offset`; False when no file on this filesystem can be that long (EINVAL), so nothing is there."""
    try:
        f.seek(offset)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return False
    return True


class LogWriter:
    """Appends a job's output; used by exactly one thread at a time."""

    def __init__(self, store: LogStore, job_id: str) -> None:
        self._store = store
        self._job_id = job_id
        self._path = store.path(job_id)
        try:
            self._file = open(self._path, "ab", buffering=0)
        except OSError as exc:
            raise self._full(exc) from None

    @property
    def size(self) -> int:
        return self._file.tell()

    def write(self, data: bytes) -> None:
        """Append all of `data`; StorageFull (naming the log) when the disk takes only part or none of it."""
        try:
            written = self._file.write(data)
            while written is not None and written < len(data):  # an unbuffered write may take only part
                written += self._file.write(data[written:]) or 0
        except OSError as exc:
            raise self._full(exc) from None
        finally:
            self._store.notify(self._job_id)

    def _full(self, exc: OSError) -> StorageFull:
        return StorageFull(f"cannot write the job's log {self._path}: {exc.strerror}; {disk.advice(self._path, exc.errno)}")

    def close(self) -> None:
        self._file.close()

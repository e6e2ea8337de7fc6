"""Per-job log files: one writer per job appends, any number of readers replay and follow.

Readers never touch Docker: they read the file the job's writer fills, so a reader can attach late,
reconnect at an offset, or read a job that finished long ago, all the same way. An offset past the
largest file the filesystem can hold (ext4: 16 TiB) is simply past the end: it reads no bytes.

The followers of one job share what they read (SharedChunks): the first to reach an offset reads
the chunk there, and the others at that offset send the same bytes, so fifty followers cost one
read of each chunk, not fifty. Each follower gives the event loop a turn between its chunks, so
no stream, however fast its client reads, holds up a new connection or another stream. When
the daemon stops, every follower ends at once (`stop`): no stream holds the stop up.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from tao_server.errors import DaemonStopping, StorageFull
from tao_server.runtime import disk, memory

READ_CHUNK = 256 * 1024
SHARED_CHUNKS = 8  # the latest chunks of a job's log its followers share: 2 MiB, while two or more follow it


class Heartbeat:
    """Yielded by `follow` after a quiet interval, so a stream can show it is alive."""


HEARTBEAT = Heartbeat()


class LogStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._shared: dict[str, SharedChunks] = {}
        self._followers = 0
        self._stopping = False

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

    def stop(self) -> None:
        """The daemon stops: every follower ends now, raising DaemonStopping, and so does any that starts."""
        self._stopping = True
        with self._lock:
            jobs = list(self._waiters)
        for job_id in jobs:
            self.notify(job_id)

    async def follow(
        self,
        job_id: str,
        offset: int,
        finished: Callable[[], bool],
        heartbeat: float | None,
    ) -> AsyncIterator[bytes | Heartbeat]:
        """Bytes from `offset` on, until `finished()` is true and the file is drained; DaemonStopping if the daemon stops first."""
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
        with open(self.path(job_id), "rb") as f, self._shared_chunks(job_id) as shared:
            position = offset
            reachable = _seek(f, offset)  # an offset no file can reach reads nothing, ever: the follower waits for the end

            def read() -> bytes:
                nonlocal position
                chunk = shared.read(f.fileno(), position) if reachable else b""
                position += len(chunk)
                return chunk

            while True:
                if self._stopping:
                    raise DaemonStopping("the daemon is stopping: follow the job again once it is back")
                chunk = read()
                if chunk:
                    yield chunk
                    # A turn of the loop between chunks: a follower whose client keeps up would
                    # otherwise read and send the whole backlog before anything else runs.
                    await asyncio.sleep(0)
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
                    # asyncio.timeout, not wait_for: in Python 3.11 wait_for swallows a cancel that comes as the
                    # event is set, and a follower cancelled then (its client refused, say) would go on for ever.
                    try:
                        async with asyncio.timeout(heartbeat):
                            await waiter[1].wait()
                    except TimeoutError:
                        yield HEARTBEAT
                finally:
                    with self._lock:
                        waiters = self._waiters.get(job_id)
                        if waiters is not None:
                            waiters.discard(waiter)
                            if not waiters:
                                del self._waiters[job_id]

    @contextmanager
    def _shared_chunks(self, job_id: str) -> Iterator[SharedChunks]:
        """The chunks the followers of `job_id` share, kept while any follows it."""
        with self._lock:
            shared = self._shared.setdefault(job_id, SharedChunks())
            shared.followers += 1
        try:
            yield shared
        finally:
            with self._lock:
                shared.followers -= 1
                if shared.followers == 0:
                    del self._shared[job_id]


class SharedChunks:
    """The latest chunks read from one job's log, for all its followers: each chunk is read once.

    Kept only while two or more follow the job; a follower alone keeps nothing. A follower between
    two chunks' starts (it read a short chunk at the end of the file) gets the rest of the chunk it
    is in, and is then in step with the others again.
    """

    def __init__(self) -> None:
        self.followers = 0
        self._chunks: dict[int, bytes] = {}  # by the offset they start at
        self._lock = threading.Lock()

    def read(self, descriptor: int, position: int) -> bytes:
        """The log's bytes from `position`: a chunk another follower read there, else one read now."""
        with self._lock:
            held = self._chunks.get(position)
            if held is not None:
                return held
            for start, chunk in self._chunks.items():
                if start < position < start + len(chunk):
                    return chunk[position - start :]
        chunk = os.pread(descriptor, READ_CHUNK, position)
        if chunk and self.followers > 1:
            with self._lock:
                self._chunks[position] = chunk
                if len(self._chunks) > SHARED_CHUNKS:
                    del self._chunks[min(self._chunks)]
        return chunk


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

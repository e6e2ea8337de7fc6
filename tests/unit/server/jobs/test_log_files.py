"""Per-job log files: writing, reading from an offset, and following (tao_server.logs)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from contextlib import contextmanager

import pytest

from tao_server.errors import DaemonStopping
from tao_server.jobs import log_files
from tao_server.jobs.log_files import HEARTBEAT, READ_CHUNK, Heartbeat, LogStore, SharedChunks

JOB = "abcd2345"
TIMEOUT = 30.0  # a safety net only: each wait ends on an event


@pytest.fixture
def store(tmp_path):
    store = LogStore(tmp_path / "logs")
    store.create(JOB)
    return store


def write(store: LogStore, *chunks: bytes) -> None:
    writer = store.writer(JOB)
    try:
        for chunk in chunks:
            writer.write(chunk)
    finally:
        writer.close()


async def collect(store: LogStore, offset: int, finished, heartbeat: float | None = None) -> bytes:
    data = b""
    async for item in store.follow(JOB, offset, finished, heartbeat):
        if not isinstance(item, Heartbeat):
            data += item
    return data


def test_writer_appends_and_tracks_size(store):
    writer = store.writer(JOB)
    writer.write(b"hello ")
    writer.write(b"world")
    assert writer.size == 11
    writer.close()
    assert store.size(JOB) == 11
    assert b"".join(store.chunks(JOB)) == b"hello world"


def test_writers_append_to_earlier_output(store):
    write(store, b"first\n")
    write(store, b"second\n")
    assert b"".join(store.chunks(JOB)) == b"first\nsecond\n"


@pytest.mark.parametrize(("offset", "expected"), [(0, b"0123456789"), (4, b"456789"), (10, b""), (99, b"")])
def test_read_from_offset(store, offset, expected):
    write(store, b"0123456789")
    assert b"".join(store.chunks(JOB, offset)) == expected


def test_an_offset_past_the_largest_file_reads_nothing(store):
    # 2**44 is past ext4's largest file, where seek() fails with EINVAL; elsewhere it is past the end: nothing either way.
    write(store, b"0123456789")
    assert list(store.chunks(JOB, 2**44)) == []
    assert asyncio.run(asyncio.wait_for(collect(store, 2**44, lambda: True), TIMEOUT)) == b""


def test_unknown_job_reads_empty(store):
    assert list(store.chunks("nosuchjob")) == []
    assert store.size("nosuchjob") == 0


def test_chunks_read_the_log_as_it_is_from_an_offset(store):
    big = b"x" * (READ_CHUNK + 10)
    writer = store.writer("job1")
    writer.write(big)
    writer.close()
    assert [len(chunk) for chunk in store.chunks("job1")] == [READ_CHUNK, 10]
    assert b"".join(store.chunks("job1", READ_CHUNK + 5)) == b"x" * 5
    assert list(store.chunks("job1", len(big) + 1)) == []
    assert list(store.chunks("nosuchjob")) == []


def test_follower_receives_everything_a_writer_thread_writes(store):
    chunks = [f"line {i}\n".encode() for i in range(50)]
    done = threading.Event()

    def produce():
        writer = store.writer(JOB)
        for chunk in chunks:
            writer.write(chunk)
            time.sleep(0.001)
        writer.close()
        done.set()
        store.notify(JOB)

    async def scenario():
        follower = asyncio.create_task(collect(store, 0, done.is_set))
        await asyncio.sleep(0.05)  # the follower is waiting on an empty file
        thread = threading.Thread(target=produce)
        thread.start()
        data = await asyncio.wait_for(follower, TIMEOUT)
        thread.join()
        return data

    assert asyncio.run(scenario()) == b"".join(chunks)


def test_follower_from_an_offset_gets_only_the_tail(store):
    write(store, b"hello world")
    data = asyncio.run(asyncio.wait_for(collect(store, 6, lambda: True), TIMEOUT))
    assert data == b"world"


def test_follower_of_a_finished_job_drains_the_file_and_ends(store):
    write(store, b"a" * 3000)
    data = asyncio.run(asyncio.wait_for(collect(store, 0, lambda: True), TIMEOUT))
    assert data == b"a" * 3000


def test_heartbeat_when_quiet(store):
    async def first_items():
        follow = store.follow(JOB, 0, lambda: False, 0.05)
        try:
            return [await asyncio.wait_for(follow.__anext__(), TIMEOUT) for _ in range(2)]
        finally:
            await follow.aclose()

    items = asyncio.run(first_items())
    assert items == [HEARTBEAT, HEARTBEAT]
    assert isinstance(items[0], Heartbeat)


def test_heartbeat_then_bytes_then_end(store):
    finished = threading.Event()

    async def scenario():
        items = []
        async for item in store.follow(JOB, 0, finished.is_set, 0.05):
            items.append(item)
            if item is HEARTBEAT and not finished.is_set():
                write(store, b"late output")
                finished.set()
                store.notify(JOB)
        return items

    items = asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))
    assert items[0] is HEARTBEAT
    assert b"".join(i for i in items if isinstance(i, bytes)) == b"late output"


def test_notify_without_followers_is_harmless(store):
    store.notify(JOB)
    store.notify("nosuchjob")
    assert list(store.chunks(JOB)) == []


def test_followers_of_one_job_read_each_chunk_once_and_get_every_byte(store, monkeypatch):
    data = bytes(range(256)) * (5 * READ_CHUNK // 256) + b"tail"
    write(store, data)
    reads: list[int] = []
    real_pread = os.pread

    def counted(descriptor: int, length: int, position: int) -> bytes:
        reads.append(position)
        return real_pread(descriptor, length, position)

    monkeypatch.setattr(log_files.os, "pread", counted)

    async def three() -> list[bytes]:
        return await asyncio.gather(*(collect(store, 0, lambda: True) for _ in range(3)))

    assert asyncio.run(three()) == [data] * 3
    # The first starts alone, and keeps its first chunk to itself; from then on the three share each chunk,
    # read once. The reads at the end find nothing, and nothing is kept of them.
    chunk_starts = list(range(0, len(data), READ_CHUNK))
    assert sorted(set(reads)) == [*chunk_starts, len(data)]
    assert [reads.count(start) for start in chunk_starts[1:]] == [1] * (len(chunk_starts) - 1)


def test_a_follower_between_two_chunks_gets_the_rest_of_the_one_it_is_in():
    shared = SharedChunks()
    shared.followers = 2
    read, write_end = os.pipe()
    os.close(write_end)
    shared._chunks[100] = b"0123456789"  # as another follower read it
    assert shared.read(read, 100) == b"0123456789"
    assert shared.read(read, 104) == b"456789"
    os.close(read)


def test_a_lone_follower_keeps_nothing(store):
    write(store, b"x" * (3 * READ_CHUNK))
    seen: list[SharedChunks] = []
    original = store._shared_chunks

    @contextmanager
    def spying(job_id: str):  # type: ignore[no-untyped-def]
        with original(job_id) as shared:
            seen.append(shared)
            yield shared

    store._shared_chunks = spying
    assert asyncio.run(collect(store, 0, lambda: True)) == b"x" * (3 * READ_CHUNK)
    assert seen[0]._chunks == {}
    assert store._shared == {}  # and nothing is left once its followers have gone


def test_a_stopping_daemon_ends_every_follower_at_once(store):
    write(store, b"before\n")

    async def scenario() -> list[object]:
        followers = [asyncio.ensure_future(collect(store, 0, lambda: False)) for _ in range(3)]
        while store._followers < 3 or len(store._waiters.get(JOB, ())) < 3:  # all caught up and waiting
            await asyncio.sleep(0.001)
        store.stop()
        ended = await asyncio.wait_for(asyncio.gather(*followers, return_exceptions=True), TIMEOUT)
        late = await asyncio.gather(collect(store, 0, lambda: False), return_exceptions=True)
        return [*ended, *late]

    outcomes = asyncio.run(scenario())
    assert all(isinstance(outcome, DaemonStopping) for outcome in outcomes), outcomes


def test_a_follower_cancelled_as_new_bytes_wake_it_ends(store: LogStore) -> None:
    # A terminal refuses a control frame and cancels its output's follower just as the job writes: the
    # cancel and the wake land in one turn of the loop. The follower must end, not wait on for ever.
    async def scenario() -> bool:
        async def follow() -> None:
            async for _ in store.follow(JOB, 0, lambda: False, heartbeat=3600.0):
                pass

        follower = asyncio.create_task(follow())
        for _ in range(10):  # turns of the loop, not time: the follower reaches its wait on the empty file
            await asyncio.sleep(0)
        store.notify(JOB)  # its event is set on the loop's next turn...
        await asyncio.sleep(0)  # ...which runs now, before the follower has woken
        follower.cancel()
        done, _ = await asyncio.wait({follower}, timeout=TIMEOUT)
        return follower in done and follower.cancelled()

    assert asyncio.run(scenario())

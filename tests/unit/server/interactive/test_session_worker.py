"""A session's own thread for its blocking calls (tao_server.interactive.session_worker)."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from tao_server.interactive.session_worker import SessionWorker


def test_calls_run_in_order_on_one_thread_of_their_own() -> None:
    async def scenario() -> list[str]:
        worker = SessionWorker("session-test")
        names = [await worker.call(lambda: threading.current_thread().name) for _ in range(3)]
        worker.stop()
        return names

    names = asyncio.run(scenario())
    assert names == ["session-test"] * 3
    assert "session-test" != threading.current_thread().name


def test_a_calls_error_reaches_its_caller() -> None:
    def fails() -> None:
        raise ConnectionResetError("the engine hung up")

    async def scenario() -> None:
        worker = SessionWorker("session-test")
        try:
            await worker.call(fails)
        finally:
            worker.stop()

    with pytest.raises(ConnectionResetError, match="the engine hung up"):
        asyncio.run(scenario())


def test_a_write_that_its_peer_never_reads_holds_only_its_own_session_and_wakes_when_shut_down() -> None:
    """As a task that never reads its input: the first session's write blocks; a second session is not held
    up by it; shutting the first one's socket down, as closing its terminal does, wakes the blocked write."""
    stuck, never_read = socket.socketpair()
    answering, echo = socket.socketpair()
    started = threading.Event()

    def write_more_than_fits() -> None:
        started.set()
        stuck.sendall(b"x" * (64 * 1024 * 1024))  # far past what the socket buffers: it waits for a reader

    async def scenario() -> None:
        blocked, free = SessionWorker("session-stuck"), SessionWorker("session-free")
        writing = asyncio.ensure_future(blocked.call(write_more_than_fits))
        await free.call(started.wait)
        await free.call(answering.sendall, b"ping")
        assert await free.call(echo.recv, 4) == b"ping"  # the other session went on meanwhile
        assert not writing.done()
        stuck.shutdown(socket.SHUT_RDWR)
        with pytest.raises(OSError):
            await asyncio.wait_for(writing, timeout=60)  # a safety net: the shutdown wakes it at once
        blocked.stop()
        free.stop()

    try:
        asyncio.run(scenario())
    finally:
        for end in (stuck, never_read, answering, echo):
            end.close()


def test_the_thread_ends_once_stopped_and_a_cancelled_wait_leaves_no_error_behind() -> None:
    release = threading.Event()

    async def scenario() -> threading.Thread:
        worker = SessionWorker("session-ending")
        waiting = asyncio.ensure_future(worker.call(release.wait))
        await asyncio.sleep(0)
        [thread] = [t for t in threading.enumerate() if t.name == "session-ending"]
        assert thread.daemon  # a call still blocked at the daemon's exit never holds the process open
        waiting.cancel()
        worker.stop()
        release.set()
        return thread

    thread = asyncio.run(scenario())
    thread.join(timeout=60)
    assert not thread.is_alive()

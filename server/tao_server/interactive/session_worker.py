"""A thread of one session's own, for its blocking calls into the backend.

A session's calls block for as long as its peer says: a task that never reads its input holds a
write to its terminal until the session closes. On a pool shared by every session, a few such
sessions would hold every thread, and everyone's terminals and forwards would wait behind them.
Here each session has its own thread, started at its first call: a stuck session holds that
one thread, and closing the session's terminal or socket (which shuts it down) wakes it. The
threads are daemon threads: one still blocked when the daemon stops never holds the process open.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_Call = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]


class SessionWorker:
    """Runs one session's blocking calls, in the order they are made, on a thread of its own."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._calls: queue.SimpleQueue[_Call | None] | None = None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on the session's thread; cancelling the wait leaves the call to end on its own."""
        loop = asyncio.get_running_loop()
        if self._calls is None:
            self._calls = queue.SimpleQueue()
            threading.Thread(target=_work, args=(self._calls, loop), name=self._name, daemon=True).start()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put((fn, args, future))
        return await future

    def stop(self) -> None:
        """The thread ends once the call it is in, if any, returns."""
        if self._calls is not None:
            self._calls.put(None)


def _work(calls: queue.SimpleQueue[_Call | None], loop: asyncio.AbstractEventLoop) -> None:
    while (call := calls.get()) is not None:
        fn, args, future = call
        try:
            result = fn(*args)
        except Exception as exc:  # noqa: BLE001  (not handled here: passed whole to the coroutine that awaits the call)
            _settle(loop, future, None, exc)
        else:
            _settle(loop, future, result, None)


def _settle(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], result: Any, exc: Exception | None) -> None:
    try:
        loop.call_soon_threadsafe(_set, future, result, exc)
    except RuntimeError:  # the loop has closed: nobody awaits the call any more
        pass


def _set(future: asyncio.Future[Any], result: Any, exc: Exception | None) -> None:
    if future.done():  # its waiter was cancelled: the session ended meanwhile
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)

"""The daemon's stop, bounded: after SIGTERM the process ends within its stop timeout, whatever is open.

uvicorn gives open connections a share of the timeout to close (`grace`), then cancels what
they still run; the lifespan then lets go of the engine and the database. Sessions hold nothing
that outlives that (interactive/session_registry.py). A thread still blocked after it (an engine call that
never answers) would hold the process open at exit: the watchdog, started as the stop begins,
ends the process at the timeout instead, naming the threads it cut. The data dir's lock is
released by the process's end and nothing earlier (sockets.py), so no second daemon takes the data
dir while this one lives.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

SHORTEST = 1.0  # seconds: a stop timeout of 0 still leaves the lifespan time to fold the database's log
GRACE_SHARE = 0.4  # of the timeout, for open connections to close on their own
GRACE_MOST = 3
CUT_SHARE = 0.9  # of the timeout: the watchdog acts a little ahead of it, so the process is gone by then
CUT_OFF_STATUS = 1  # the stop was not clean: something still ran when the time was up


def deadline(stop_timeout: float) -> float:
    """Seconds from the signal to the process's end, at the latest."""
    return max(stop_timeout, SHORTEST)


def grace(stop_timeout: float) -> int:
    """Whole seconds (as uvicorn takes them) open connections get to close before what they run is cancelled."""
    return int(min(GRACE_MOST, GRACE_SHARE * deadline(stop_timeout)))


def start_watchdog(stop_timeout: float, last_words: Callable[[], None]) -> None:
    """End the process when it still runs at its deadline; `last_words` (removing the socket file) runs first."""
    timer = threading.Timer(CUT_SHARE * deadline(stop_timeout), _cut, args=(stop_timeout, last_words))
    timer.name = "stop-watchdog"
    timer.daemon = True  # a process that ends in time ends it too
    timer.start()


def _cut(stop_timeout: float, last_words: Callable[[], None]) -> None:
    still = sorted(thread.name for thread in threading.enumerate() if not thread.daemon and thread is not threading.main_thread())
    log.error(
        "still stopping %.1f s after the signal (the stop timeout is %.1f s); ending now. Threads still running: %s",
        CUT_SHARE * deadline(stop_timeout),
        deadline(stop_timeout),
        ", ".join(still) or "none but the main thread",
    )
    last_words()
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(CUT_OFF_STATUS)

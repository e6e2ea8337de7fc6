"""Whether the backend answers: reported lost by whoever meets an outage, found again by a probe.

An outage is not a job's end. The runner reports it here and waits; while the backend is out of
reach nothing new starts, running jobs keep their status and GPUs, and their followers keep
waiting. A probe pings the backend until it answers, and everything waiting goes on at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from tao_server.errors import BackendError

log = logging.getLogger(__name__)

PROBE_INTERVAL = 0.2  # seconds between pings while the backend is out of reach


class BackendHealth:
    def __init__(self, ping: Callable[[], None], probe_interval: float = PROBE_INTERVAL) -> None:
        self._ping = ping
        self._probe_interval = probe_interval
        self._up = threading.Event()
        self._up.set()
        self._lock = threading.Lock()
        self._lost_at: datetime | None = None
        self._why: str | None = None

    @property
    def unreachable_since(self) -> datetime | None:
        return self._lost_at

    def describe(self) -> str | None:
        """ "unreachable since ...: why", or None while the backend answers."""
        lost_at, why = self._lost_at, self._why
        if lost_at is None:
            return None
        return f"unreachable since {lost_at.isoformat(timespec='seconds').replace('+00:00', 'Z')}: {why}"

    def lost(self, why: str) -> None:
        """The backend did not answer: start probing it, unless a probe already runs."""
        with self._lock:
            if not self._up.is_set():
                return
            self._up.clear()
            self._lost_at, self._why = datetime.now(UTC), why
        log.warning("the backend does not answer (%s); jobs wait for it", why)
        threading.Thread(target=self._probe, name="backend-probe", daemon=True).start()

    def wait_until_up(self, stop_when: Callable[[], bool] = lambda: False) -> bool:
        """Block while the backend is out of reach; False when `stop_when()` turned true first."""
        while not self._up.wait(0.1):
            if stop_when():
                return False
        return True

    def _probe(self) -> None:
        started = time.monotonic()
        while True:
            try:
                self._ping()
            except BackendError:
                time.sleep(self._probe_interval)
                continue
            with self._lock:
                self._lost_at, self._why = None, None
                self._up.set()
            log.warning("the backend answers again after %.1f s; jobs go on", time.monotonic() - started)
            return

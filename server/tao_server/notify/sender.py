"""The sender: threads of its own that take due deliveries from the outbox and try them, never the event
loop's nor a job's.

One dispatcher thread finds what is due and hands it to a few sender threads (`workers`), so one
slow receiver (up to the 10 s a try may last) never holds up the others. A try that may go better
later (no answer, a 5xx, 429) is tried again after an exponential backoff with jitter, for the
retry window (24 hours) from the notification; each try's outcome is written to the outbox and to
the job's events (`notify`) before the next is planned, so a daemon restart loses nothing. A
delivery being sent when the daemon stops is sent again after its restart: receivers tell a
repeat by its X-Tao-Delivery id.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from tao_server.errors import TaoError
from tao_server.jobs.events import EventLog
from tao_server.notify import signing
from tao_server.notify.notify_models import PIPELINE_ENDED, Delivery, DeliveryState
from tao_server.notify.outbox import Outbox
from tao_server.notify.preferences import Preferences
from tao_server.notify.transport import Answer
from tao_server.notify.urls import masked

log = logging.getLogger(__name__)

IDLE_WAIT = 60.0  # the dispatcher looks again at least this often, whatever it was told
KEEP_SETTLED = 7 * 24 * 3600.0  # seconds a delivered or given-up delivery stays in the outbox (its events stay with the job)
EVENT_TYPE = "notify"


class Poster(Protocol):
    """One try of a delivery (transport.Poster)."""

    def post(self, url_text: str, owner_uid: int, body: bytes, headers: dict[str, str]) -> Answer: ...


@dataclass(frozen=True)
class Backoff:
    """When a failed delivery is tried again: `first` seconds after its first try, twice as long after each
    further one up to `longest`, each delay drawn from its upper half (jitter); never `window` seconds past the notification."""

    first: float = 10.0
    longest: float = 3600.0
    window: float = 24 * 3600.0

    def delay(self, tries: int) -> float:
        longest = min(self.first * 2 ** max(0, tries - 1), self.longest)
        return random.uniform(longest / 2, longest)

    def next_try(self, delivery: Delivery) -> float:
        """When a delivery tried `delivery.tries` times is due again, counted from its last try."""
        return (delivery.last_try_at or delivery.created_at) + self.delay(delivery.tries)


class Sender:
    def __init__(
        self,
        outbox: Outbox,
        preferences: Preferences,
        poster: Poster,
        events: EventLog,
        backoff: Backoff,
        workers: int = 4,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._outbox = outbox
        self._preferences = preferences
        self._poster = poster
        self._events = events
        self._backoff = backoff
        self._workers = workers
        self._clock = clock
        self._busy: dict[str, tuple[str | None, str]] = {}  # id -> (job, URL) of each delivery being sent now
        # id -> when it may be tried again, for deliveries whose try broke before its outcome could be written
        self._cooling: dict[str, float] = {}
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._stopping = False
        self._calls: queue.SimpleQueue[Delivery | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Forget long-settled deliveries, bring forward what waits under longer delays than the settings now
        give, then start sending."""
        self._outbox.prune(self._clock() - KEEP_SETTLED)
        self._outbox.reschedule(self._backoff.next_try)
        # Daemon threads: a try in flight at exit is not waited for; the next daemon sends it again.
        self._threads = [threading.Thread(target=self._send_each, name=f"notify-{i}", daemon=True) for i in range(self._workers)]
        self._threads.append(threading.Thread(target=self._dispatch, name="notify-dispatch", daemon=True))
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        """New deliveries are in the outbox: look now."""
        self._wakeup.set()

    def stop(self) -> None:
        self._stopping = True
        for _ in range(self._workers):
            self._calls.put(None)
        self._wakeup.set()

    # -- the dispatcher ----------------------------------------------------------------------------

    def _dispatch(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            try:
                wait = self._hand_out()
            except (TaoError, SQLAlchemyError) as exc:  # the database is out of reach: look again later
                log.warning("notifications: cannot read the outbox: %s", getattr(exc, "message", exc))
                wait = IDLE_WAIT
            self._wakeup.wait(wait)

    def _hand_out(self) -> float:
        """Give each free sender a due delivery; how long until the next is due.

        One job's deliveries to one URL go one at a time, oldest first: a receiver hears of a start
        before the end, unless the start's first try failed.
        """
        now = self._clock()
        with self._lock:
            busy = dict(self._busy)
            self._cooling = {key: until for key, until in self._cooling.items() if until > now}
            resting = set(self._cooling)
        free = self._workers - len(busy)
        held_back = False
        if free > 0:
            for delivery in self._outbox.due(now, free * 4, busy.keys() | resting):
                key = (delivery.job_id, delivery.url)
                if key in busy.values():
                    held_back = True  # its sender wakes the dispatcher when done
                    continue
                if len(busy) >= self._workers:
                    break
                busy[delivery.id] = key
                with self._lock:
                    self._busy[delivery.id] = key
                self._calls.put(delivery)
        due = self._outbox.next_due(busy.keys() | resting)
        if due is None or held_back or len(busy) >= self._workers:
            return IDLE_WAIT  # a sender that finishes wakes the dispatcher
        return min(IDLE_WAIT, max(0.0, due - self._clock()))

    # -- the senders -------------------------------------------------------------------------------

    def _send_each(self) -> None:
        while (delivery := self._calls.get()) is not None:
            try:
                self._try(delivery)
            except Exception:  # a sender must outlive one bad delivery: it stays pending, and rests before its next try
                log.exception("notifications: delivery %s could not be tried", delivery.id)
                with self._lock:
                    self._cooling[delivery.id] = self._clock() + IDLE_WAIT
            finally:
                with self._lock:
                    self._busy.pop(delivery.id, None)
                self._wakeup.set()

    def _try(self, delivery: Delivery) -> None:
        body = delivery.body.encode()
        sent_at = self._clock()
        headers = signing.headers(self._preferences.secret(delivery.owner_uid), body, delivery.id, delivery.event, sent_at)
        answer = self._poster.post(delivery.url, delivery.owner_uid, body, headers)
        tries = delivery.tries + 1
        state, next_try, message = self._after(delivery, answer, tries, sent_at)
        self._outbox.record(
            delivery.id, tries=tries, state=state, last_try_at=sent_at, next_try_at=next_try or sent_at, last_result=message
        )
        if delivery.job_id is not None and delivery.event != PIPELINE_ENDED:  # a pipeline's id names no job's events
            data = {
                "delivery": delivery.id,
                "event": delivery.event,
                "url": masked(delivery.url),
                "try": tries,
                "outcome": {DeliveryState.pending: "retrying"}.get(state, state),
                "status": answer.status,
                "message": message,
                "next_try_at": _utc(next_try) if next_try is not None else None,
            }
            self._events.append(delivery.job_id, EVENT_TYPE, data, late=True)
        log.info("notification %s of job %s to %s: try %d %s", delivery.event, delivery.job_id, masked(delivery.url), tries, message)

    def _after(self, delivery: Delivery, answer: Answer, tries: int, sent_at: float) -> tuple[str, float | None, str]:
        """(state, next try or None, what to say) after a try that answered `answer`."""
        if answer.outcome == "delivered":
            return DeliveryState.delivered, None, answer.message
        if answer.outcome == "failed":
            return DeliveryState.failed, None, answer.message
        next_try = sent_at + self._backoff.delay(tries)
        if next_try > delivery.created_at + self._backoff.window:
            hours = self._backoff.window / 3600
            return DeliveryState.failed, None, f"{answer.message}; given up after {tries} tries over {hours:g} hours"
        return DeliveryState.pending, next_try, answer.message


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

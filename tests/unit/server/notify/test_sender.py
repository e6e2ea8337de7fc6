"""The sender's decisions, driven by hand: which due delivery goes to a sender, what a try's outcome makes of it.

A real outbox on a real SQLite file and a real event log; the poster is a stand-in that answers as
the test says, and the clock is the test's: no thread runs, nothing is sent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tao_server import db
from tao_server.jobs.events import EventLog
from tao_server.jobs.store import JobStore
from tao_server.notify.notify_models import ENDED, STARTED, Delivery, DeliveryState
from tao_server.notify.outbox import Outbox
from tao_server.notify.preferences import Preferences
from tao_server.notify.sender import IDLE_WAIT, Backoff, Sender
from tao_server.notify.transport import Answer


class Poster:
    """Answers each post with the next of `answers`; an exception in them is raised."""

    def __init__(self, *answers: Answer | Exception) -> None:
        self.answers = list(answers)
        self.posted: list[tuple[str, dict[str, str]]] = []

    def post(self, url: str, owner_uid: int, body: bytes, headers: dict[str, str]) -> Answer:
        self.posted.append((url, headers))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    engine = db.make_engine(tmp_path / "tao.db")
    db.upgrade(engine)
    return Outbox(JobStore(engine))


def sender(outbox: Outbox, poster: Poster, clock: Clock, tmp_path: Path, backoff: Backoff | None = None) -> Sender:
    (tmp_path / "logs").mkdir(exist_ok=True)
    preferences = Preferences(outbox._store)
    return Sender(
        outbox, preferences, poster, EventLog(tmp_path / "logs"), backoff or Backoff(first=10, longest=10), workers=2, clock=clock
    )


def delivery(delivery_id: str, event: str = ENDED, job_id: str = "j1", at: float = 1000.0) -> Delivery:
    return Delivery(id=delivery_id, job_id=job_id, event=event, owner_uid=1001, url="http://h/", body="{}", created_at=at, next_try_at=at)


def handed(sending: Sender) -> list[str]:
    """What the dispatcher gives the senders now, taken off their queue."""
    sending._hand_out()
    out = []
    while not sending._calls.empty():
        call = sending._calls.get()
        assert call is not None
        out.append(call.id)
    return out


def run_one(sending: Sender, delivery_id: str, outbox: Outbox) -> None:
    """One sender's turn at `delivery_id`, in this thread."""
    (found,) = [d for d in outbox.due(float("inf"), 10, ()) if d.id == delivery_id]
    sending._calls.put(found)
    sending._calls.put(None)
    sending._send_each()


def test_one_jobs_notifications_to_one_url_go_one_at_a_time_oldest_first(outbox: Outbox, tmp_path: Path) -> None:
    clock = Clock()
    sending = sender(outbox, Poster(Answer("delivered", "answered 200 OK", 200)), clock, tmp_path)
    outbox.add([delivery("start", STARTED, at=999.0), delivery("end", ENDED), delivery("other", job_id="j2")])
    assert handed(sending) == ["start", "other"]  # "end" waits for "start", not for "other"
    sending._busy.pop("other")
    assert handed(sending) == ["other"]  # free again, and still due; "end" still waits while "start" is being sent
    sending._busy.clear()
    outbox.record("start", state=DeliveryState.delivered)
    outbox.record("other", state=DeliveryState.delivered)
    assert handed(sending) == ["end"]


def test_a_retried_try_is_planned_by_the_backoff_and_written_as_an_event(outbox: Outbox, tmp_path: Path) -> None:
    clock = Clock()
    poster = Poster(Answer("retry", "answered 503 Service Unavailable", 503), Answer("delivered", "answered 200 OK", 200))
    sending = sender(outbox, poster, clock, tmp_path)
    outbox.add([delivery("d")])
    run_one(sending, "d", outbox)
    assert handed(sending) == []  # not due before its delay
    clock.now += 10
    assert handed(sending) == ["d"]
    sending._busy.clear()
    run_one(sending, "d", outbox)
    events = [json.loads(line)["data"] for line in (tmp_path / "logs" / "j1.events").read_text().splitlines()]
    assert [(e["try"], e["outcome"], e["status"]) for e in events] == [(1, "retrying", 503), (2, "delivered", 200)]
    assert events[0]["next_try_at"] is not None and events[1]["next_try_at"] is None
    assert {headers["X-Tao-Delivery"] for _, headers in poster.posted} == {"d"}


def test_no_try_is_planned_past_the_retry_window(outbox: Outbox, tmp_path: Path) -> None:
    clock = Clock()
    sending = sender(outbox, Poster(Answer("retry", "no answer within 10 s")), clock, tmp_path, Backoff(first=10, longest=10, window=5))
    outbox.add([delivery("d")])
    run_one(sending, "d", outbox)
    assert outbox.pending("j1") is False
    (event,) = [json.loads(line)["data"] for line in (tmp_path / "logs" / "j1.events").read_text().splitlines()]
    assert event["outcome"] == "failed" and event["message"].endswith("given up after 1 tries over 0.00138889 hours")


def test_a_try_that_breaks_rests_before_it_is_tried_again(outbox: Outbox, tmp_path: Path) -> None:
    clock = Clock()
    sending = sender(outbox, Poster(RuntimeError("broken"), Answer("delivered", "answered 200 OK", 200)), clock, tmp_path)
    outbox.add([delivery("d")])
    run_one(sending, "d", outbox)
    assert outbox.pending("j1") is True  # its outcome was never written: it is still to be sent
    assert handed(sending) == []  # but not at once, again and again
    clock.now += IDLE_WAIT + 1
    assert handed(sending) == ["d"]

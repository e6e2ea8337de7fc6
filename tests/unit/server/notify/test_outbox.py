"""The outbox and each user's preferences, on a real SQLite file brought to the newest schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from tao_server import db
from tao_server.jobs.store import JobStore
from tao_server.notify.notify_models import ENDED, STARTED, Delivery, DeliveryState
from tao_server.notify.outbox import Outbox
from tao_server.notify.preferences import Preferences


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    engine = db.make_engine(tmp_path / "tao.db")
    db.upgrade(engine)
    return JobStore(engine)


def delivery(delivery_id: str, event: str = ENDED, url: str = "http://h/", job_id: str = "j1", at: float = 100.0) -> Delivery:
    return Delivery(id=delivery_id, job_id=job_id, event=event, owner_uid=1001, url=url, body="{}", created_at=at, next_try_at=at)


def test_an_event_is_kept_once_per_job_attempt_and_url(store: JobStore) -> None:
    outbox = Outbox(store)
    assert outbox.add([delivery("a"), delivery("b", url="http://other/")]) == 2
    assert outbox.add([delivery("c")]) == 0  # the same end told again: nothing new
    assert outbox.add([delivery("d", event=STARTED)]) == 1
    assert sorted(d.id for d in outbox.due(1000.0, 10, ())) == ["a", "b", "d"]


def test_due_is_oldest_first_and_leaves_out_what_is_being_sent_or_not_yet_due(store: JobStore) -> None:
    outbox = Outbox(store)
    outbox.add([delivery("late", job_id="j3", at=300.0), delivery("first", job_id="j1", at=100.0), delivery("next", job_id="j2", at=200.0)])
    assert [d.id for d in outbox.due(250.0, 10, ())] == ["first", "next"]
    assert [d.id for d in outbox.due(250.0, 10, {"first"})] == ["next"]
    assert outbox.next_due({"first", "next"}) == 300.0
    outbox.record("late", state=DeliveryState.delivered, tries=1)
    assert outbox.next_due({"first", "next"}) is None


def test_a_restart_brings_forward_what_waits_too_long_and_never_puts_off(store: JobStore) -> None:
    outbox = Outbox(store)
    outbox.add([delivery("waits", job_id="j1"), delivery("soon", job_id="j2"), delivery("untried", job_id="j3")])
    outbox.record("waits", tries=1, last_try_at=100.0, next_try_at=3700.0)
    outbox.record("soon", tries=1, last_try_at=100.0, next_try_at=101.0)
    outbox.reschedule(lambda d: (d.last_try_at or 0.0) + 5.0)
    due = {d.id: d.next_try_at for d in outbox.due(10_000.0, 10, ())}
    assert due == {"waits": 105.0, "soon": 101.0, "untried": 100.0}


def test_settled_deliveries_are_forgotten_after_a_while_pending_ones_never(store: JobStore) -> None:
    outbox = Outbox(store)
    outbox.add(
        [
            delivery("done", job_id="j1"),
            delivery("gave-up", job_id="j2"),
            delivery("waiting", job_id="j3"),
            delivery("new", job_id="j4", at=900.0),
        ]
    )
    outbox.record("done", state=DeliveryState.delivered)
    outbox.record("gave-up", state=DeliveryState.failed)
    outbox.record("new", state=DeliveryState.delivered)
    assert outbox.pending("j1") is False and outbox.pending("j3") is True
    assert outbox.prune(before=500.0) == 2
    assert [d.id for d in outbox.due(10_000.0, 10, ())] == ["waiting"]
    assert outbox.pending("j3") is True


def test_a_users_defaults_are_theirs_in_the_order_added(store: JobStore) -> None:
    preferences = Preferences(store)
    assert preferences.add_url(1001, "http://b/") and preferences.add_url(1001, "http://a/")
    assert not preferences.add_url(1001, "http://a/")
    assert preferences.add_url(1002, "http://c/")
    assert preferences.urls(1001) == ["http://b/", "http://a/"] and preferences.urls(1002) == ["http://c/"]
    assert preferences.remove_url(1001, "http://b/") and not preferences.remove_url(1001, "http://b/")
    assert preferences.urls(1001) == ["http://a/"]


def test_a_secret_is_made_once_and_kept(store: JobStore, tmp_path: Path) -> None:
    made = Preferences(store).secret(1001)
    assert Preferences(store).secret(1001) == made and Preferences(store).secret(1002) != made
    reopened = JobStore(db.make_engine(tmp_path / "tao.db"))
    assert Preferences(reopened).secret(1001) == made

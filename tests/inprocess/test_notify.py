"""Notifications in process: the app on the fake engine, posting to real receivers on loopback addresses.

Each receiver is an HTTP server on 127.0.0.1 (or 127.0.0.2) that the test scripts: what it answers,
and whether it holds its answer. Nothing is sent off loopback, and nothing waits on a guess of how
long a try takes: the tests wait for what the receiver saw and for the job's events.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tao_server.testing.receiver import Received, Receiver
from tests.inprocess.conftest import Caller, Daemon

FAST = {"notify_retry_first": 0.01, "notify_retry_longest": 0.02}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def policy(tmp_path: Path, *patterns: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(f"[default]\nnotify_to = {list(patterns)!r}\n".replace("'", '"'))
    return path


@pytest.fixture
def notifying(start_daemon: Callable[..., Daemon], receiver: Receiver, tmp_path: Path) -> Callable[..., Daemon]:
    """Start a daemon whose policy opens the receiver (127.0.0.1:ITS_PORT) to notifications."""

    def start(**settings: Any) -> Daemon:
        return start_daemon(policy=policy(tmp_path, f"127.0.0.1:{receiver.port}"), **{**FAST, **settings})

    return start


def delivered(seen: list[Received], event: str | None = None) -> list[Received]:
    return [got for got in seen if got.status < 300 and (event is None or got.headers["x-tao-event"] == event)]


def notify_events(caller: Caller, job_id: str) -> list[dict[str, Any]]:
    return [event["data"] for event in caller.get(f"/v1/jobs/{job_id}/events").json()["events"] if event["type"] == "notify"]


def wait_for_events(caller: Caller, job_id: str, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 30) -> list[dict[str, Any]]:
    """The job's notify events once `done` holds of them (a safety timeout only)."""
    deadline = time.monotonic() + timeout
    while not done(found := notify_events(caller, job_id)):
        assert time.monotonic() < deadline, f"the job's notify events stayed {found}"
        time.sleep(0.005)
    return found


def test_a_job_posts_its_start_and_end_signed_with_its_owners_secret(notifying: Callable[..., Daemon], receiver: Receiver) -> None:
    daemon = notifying()
    job = daemon.alice.submit("detectnet_v2", "exit", "3", notify=[receiver.url])
    assert job["notify"] == [receiver.url]
    daemon.alice.wait_for(job["id"], "failed")
    got = receiver.wait_for(lambda seen: len(delivered(seen)) == 2)
    secret = daemon.alice.post("/v1/notify/secret").json()["secret"]
    started, ended = (got[0], got[1]) if got[0].headers["x-tao-event"] == "job.started" else (got[1], got[0])
    for each in (started, ended):
        assert each.signed_with(secret)
        assert each.headers["x-tao-delivery"] == each.json()["delivery"]
        assert abs(int(each.headers["x-tao-timestamp"]) - time.time()) < 3600
        assert each.headers["content-type"] == "application/json" and each.path == "/hook"
    body = ended.json()
    assert (body["event"], body["job_id"], body["owner_uid"], body["task"], body["subtask"]) == (
        "job.ended",
        job["id"],
        1001,
        "detectnet_v2",
        "exit",
    )
    assert (body["status"], body["exit_code"], body["error"]) == ("failed", 3, None)
    assert body["duration_seconds"] >= 0 and body["progress"] is None and body["kpi"] is None
    assert body["url"] is None  # this daemon has no TCP address to link to
    assert body["text"].startswith(f"tao job {job['id']} (detectnet_v2 exit)") and "failed with exit code 3" in body["text"]
    assert started.json()["status"] == "running" and started.json()["text"].endswith("started")
    events = wait_for_events(daemon.alice, job["id"], lambda found: len(found) == 2)
    assert {(event["event"], event["outcome"], event["status"], event["try"]) for event in events} == {
        ("job.started", "delivered", 200, 1),
        ("job.ended", "delivered", 200, 1),
    }


def test_a_delivery_answered_500_is_tried_again_and_arrives_once(notifying: Callable[..., Daemon], receiver: Receiver) -> None:
    daemon = notifying()
    receiver.answer(500)
    job = daemon.alice.submit("detectnet_v2", "exit", "0", notify=[receiver.url])
    got = receiver.wait_for(lambda seen: len(delivered(seen)) == 2)
    secret = daemon.alice.post("/v1/notify/secret").json()["secret"]
    failed = [each for each in got if each.status == 500]
    assert len(failed) == 1
    again = [each for each in delivered(got) if each.headers["x-tao-delivery"] == failed[0].headers["x-tao-delivery"]]
    assert len(again) == 1 and again[0].body == failed[0].body and again[0].signed_with(secret)
    events = wait_for_events(daemon.alice, job["id"], lambda found: len(found) == 3)
    tries = [
        (event["try"], event["outcome"], event["status"]) for event in events if event["delivery"] == again[0].headers["x-tao-delivery"]
    ]
    assert tries == [(1, "retrying", 500), (2, "delivered", 200)]


def test_a_restart_between_the_tries_loses_nothing(notifying: Callable[..., Daemon], receiver: Receiver) -> None:
    """The first daemon plans its next try an hour away; the one that takes over its data dir, with short
    delays, tries it at once: the delivery went nowhere in between, and arrives signed as before."""
    first = notifying(notify_retry_first=3600, notify_retry_longest=3600)
    receiver.answer(500)
    job = first.alice.submit("detectnet_v2", "exit", "0", notify=[receiver.url])
    first.alice.wait_for(job["id"], "succeeded")
    waiting = wait_for_events(first.alice, job["id"], lambda found: len(found) == 2 and any(e["outcome"] == "retrying" for e in found))
    secret = first.alice.post("/v1/notify/secret").json()["secret"]
    first.stop()

    second = notifying()
    got = receiver.wait_for(lambda seen: len(delivered(seen)) == 2)
    retried = next(event["delivery"] for event in waiting if event["outcome"] == "retrying")
    arrived = [each for each in delivered(got) if each.headers["x-tao-delivery"] == retried]
    assert len(arrived) == 1 and arrived[0].signed_with(secret)
    assert second.alice.post("/v1/notify/secret").json()["secret"] == secret  # kept across the restart
    events = wait_for_events(second.alice, job["id"], lambda found: len(found) == 3)
    assert [(e["try"], e["outcome"]) for e in events if e["delivery"] == retried] == [(1, "retrying"), (2, "delivered")]


@pytest.mark.parametrize(
    ("url", "address", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "link-local"),
        ("http://127.0.0.2:{port}/hook", "127.0.0.2", "loopback"),
        ("http://127.0.0.1:{other}/hook", "127.0.0.1", "loopback"),
        ("http://[::ffff:127.0.0.1]:{other}/hook", "::ffff:127.0.0.1", "loopback"),  # mapped: judged as 127.0.0.1
        ("http://10.0.0.1/", "10.0.0.1", "private"),
        ("http://100.64.1.1/", "100.64.1.1", "carrier-grade NAT"),
        ("http://[fe80::1]/", "fe80::1", "link-local"),
    ],
)
def test_an_address_the_policy_does_not_open_is_refused_at_submission(
    notifying: Callable[..., Daemon], receiver: Receiver, url: str, address: str, why: str
) -> None:
    daemon = notifying()
    listed_before = daemon.admin.get("/v1/jobs", params={"limit": 500}).json()["jobs"]
    answer = daemon.alice.submit("detectnet_v2", "exit", "0", expect=403, notify=[url.format(port=receiver.port, other=receiver.port + 1)])
    error = answer["error"]
    assert error["code"] == "destination_refused" and error["field"] == "notify[0]"
    assert f"{address} is a" in error["message"] and why in error["message"]
    assert f"notify_to in {daemon.settings.policy} [default]: 127.0.0.1:{receiver.port}" in error["message"]
    assert daemon.admin.get("/v1/jobs", params={"limit": 500}).json()["jobs"] == listed_before
    assert receiver.seen == []


def test_a_url_that_is_not_one_is_refused_naming_it(notifying: Callable[..., Daemon], receiver: Receiver) -> None:
    daemon = notifying()
    answer = daemon.alice.submit("detectnet_v2", "exit", "0", expect=422, notify=[receiver.url, "ftp://files.example/x"])
    assert answer["error"]["field"] == "notify[1]"
    assert answer["error"]["message"] == "notify[1]: 'ftp://files.example/x': only http:// and https:// URLs are notified"


def test_a_redirect_is_not_followed(notifying: Callable[..., Daemon], receiver: Receiver) -> None:
    elsewhere = Receiver(host="127.0.0.2").start()
    try:
        daemon = notifying()
        for _ in range(2):
            receiver.answer(302, {"Location": elsewhere.url})
        job = daemon.alice.submit("detectnet_v2", "exit", "0", notify=[receiver.url])
        events = wait_for_events(daemon.alice, job["id"], lambda found: len(found) == 2)
        assert {(event["outcome"], event["status"]) for event in events} == {("failed", 302)}
        assert all("redirects are not followed" in event["message"] and elsewhere.url in event["message"] for event in events)
        assert elsewhere.seen == [] and len(receiver.seen) == 2  # one try each: a redirect is not tried again
    finally:
        elsewhere.stop()


def test_a_slow_receiver_never_holds_up_a_job(notifying: Callable[..., Daemon], receiver: Receiver) -> None:
    daemon = notifying()
    receiver.hold()
    job = daemon.alice.submit("detectnet_v2", "exit", "0", notify=[receiver.url])
    receiver.wait_arrived(1)  # its start is being posted, and held
    assert daemon.alice.wait_for(job["id"], "succeeded")["exit_code"] == 0
    receiver.release()
    receiver.wait_for(lambda seen: len(delivered(seen)) == 2)


def test_a_try_with_no_answer_ends_at_the_timeout_and_is_tried_again(notifying: Callable[..., Daemon], receiver: Receiver) -> None:
    daemon = notifying(notify_timeout=0.2, notify_retry_first=3600, notify_retry_longest=3600)
    receiver.hold()
    job = daemon.alice.submit("detectnet_v2", "exit", "0", notify=[receiver.url])
    events = wait_for_events(daemon.alice, job["id"], lambda found: len(found) == 2)
    assert {(event["outcome"], event["status"]) for event in events} == {("retrying", None)}
    assert all("no answer within 0.2 s" in event["message"] and event["next_try_at"] for event in events)
    receiver.release()


def test_a_permanent_refusal_and_the_end_of_the_retry_window_give_up(notifying: Callable[..., Daemon], receiver: Receiver) -> None:
    daemon = notifying(notify_retry_for=0.001)
    receiver.answer(404)
    receiver.answer(503)
    job = daemon.alice.submit("detectnet_v2", "exit", "0", notify=[receiver.url])
    events = wait_for_events(daemon.alice, job["id"], lambda found: len(found) == 2)
    assert {event["outcome"] for event in events} == {"failed"}
    messages = sorted(event["message"] for event in events)
    assert messages[0].startswith("answered 404 Not Found")
    assert messages[1].startswith("answered 503 Service Unavailable") and "given up after 1 tries over" in messages[1]
    assert len(receiver.seen) == 2


def test_credentials_in_a_url_never_come_back(notifying: Callable[..., Daemon], receiver: Receiver) -> None:
    daemon = notifying()
    url = f"http://hook:hunter2@127.0.0.1:{receiver.port}/hook?token=s3cr3t"
    job = daemon.alice.submit("detectnet_v2", "exit", "0", notify=[url])
    shown = f"http://hook:****@127.0.0.1:{receiver.port}/hook?token=****"
    assert job["notify"] == [shown] and daemon.alice.job(job["id"])["notify"] == [shown]
    events = wait_for_events(daemon.alice, job["id"], lambda found: len(found) == 2)
    assert {event["url"] for event in events} == {shown}
    got = receiver.wait_for(lambda seen: len(seen) == 2)
    assert {each.path for each in got} == {"/hook?token=s3cr3t"}  # the receiver gets the URL as it was given
    assert {each.headers["authorization"] for each in got} == {"Basic " + base64.b64encode(b"hook:hunter2").decode()}


def test_defaults_are_each_users_own_and_every_new_job_of_theirs_notifies_them(
    notifying: Callable[..., Daemon], receiver: Receiver
) -> None:
    daemon = notifying()
    secret_url = f"http://127.0.0.1:{receiver.port}/hook/abcdefghijkl"
    added = daemon.alice.post("/v1/notify/urls", json={"url": secret_url})
    assert added.status_code == 201 and added.json() == {"url": f"http://127.0.0.1:{receiver.port}/hook/****ijkl"}
    assert daemon.alice.post("/v1/notify/urls", json={"url": secret_url}).status_code == 201  # twice: harmless
    assert daemon.alice.get("/v1/notify/urls").json() == {"urls": [added.json()]}
    assert daemon.bob.get("/v1/notify/urls").json() == {"urls": []}
    mine = daemon.alice.submit("detectnet_v2", "exit", "0", notify=[receiver.url])
    assert mine["notify"] == [receiver.url, added.json()["url"]]
    theirs = daemon.bob.submit("detectnet_v2", "exit", "0")
    assert theirs["notify"] == []
    got = receiver.wait_for(lambda seen: len(delivered(seen)) == 4)
    assert {each.path for each in got} == {"/hook", "/hook/abcdefghijkl"}
    assert {each.json()["job_id"] for each in got} == {mine["id"]}
    removed = daemon.alice.delete("/v1/notify/urls", params={"url": added.json()["url"]})  # as listed, masked
    assert removed.status_code == 200 and daemon.alice.get("/v1/notify/urls").json() == {"urls": []}
    gone = daemon.alice.delete("/v1/notify/urls", params={"url": secret_url})
    assert gone.status_code == 422 and "is not one of your default URLs" in gone.json()["error"]["message"]


def test_a_default_is_checked_as_a_jobs_url_is(notifying: Callable[..., Daemon]) -> None:
    daemon = notifying()
    refused = daemon.alice.post("/v1/notify/urls", json={"url": "http://169.254.169.254/"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "destination_refused"
    assert "169.254.169.254 is a link-local address" in refused.json()["error"]["message"]
    assert daemon.alice.get("/v1/notify/urls").json() == {"urls": []}


def test_each_user_has_their_own_secret(notifying: Callable[..., Daemon]) -> None:
    daemon = notifying()
    alice = daemon.alice.post("/v1/notify/secret").json()["secret"]
    assert daemon.alice.post("/v1/notify/secret").json()["secret"] == alice
    bob = daemon.bob.post("/v1/notify/secret").json()["secret"]
    assert bob != alice and len(bob) == len(alice) == 64


def test_a_queued_job_cancelled_is_told_once_without_a_start(notifying: Callable[..., Daemon], receiver: Receiver) -> None:
    daemon = notifying(max_running_jobs=1)
    holding = daemon.alice.submit("detectnet_v2", "hold", "first")
    daemon.alice.wait_for(holding["id"], "running")
    queued = daemon.alice.submit("detectnet_v2", "exit", "0", notify=[receiver.url])
    daemon.alice.post(f"/v1/jobs/{queued['id']}/cancel")
    got = receiver.wait_for(lambda seen: len(seen) == 1)
    body = got[0].json()
    assert (body["event"], body["status"], body["duration_seconds"]) == ("job.ended", "cancelled", None)
    daemon.engine.release("first")
    daemon.alice.wait_for(holding["id"], "succeeded")
    assert len(receiver.seen) == 1
    assert [event["event"] for event in notify_events(daemon.alice, queued["id"])] == ["job.ended"]


def test_run_again_notifies_the_same_urls(notifying: Callable[..., Daemon], receiver: Receiver) -> None:
    daemon = notifying()
    job = daemon.alice.submit("detectnet_v2", "exit", "0", notify=[receiver.url])
    daemon.alice.wait_for(job["id"], "succeeded")
    again = daemon.alice.post(f"/ui/jobs/{job['id']}/rerun", headers={"Origin": "http://testserver"})
    assert again.status_code == 201, again.text
    got = receiver.wait_for(lambda seen: len(delivered(seen)) == 4)
    assert len({each.json()["job_id"] for each in got}) == 2


def test_the_dashboard_timeline_shows_each_try_and_stays_live_while_one_is_due(
    notifying: Callable[..., Daemon], receiver: Receiver
) -> None:
    daemon = notifying(notify_retry_first=3600, notify_retry_longest=3600)
    receiver.answer(500)
    receiver.answer(500)
    job = daemon.alice.submit("detectnet_v2", "exit", "0", notify=[receiver.url])
    daemon.alice.wait_for(job["id"], "succeeded")
    wait_for_events(daemon.alice, job["id"], lambda found: len(found) == 2)
    part = daemon.alice.get(f"/ui/parts/job/{job['id']}")
    assert part.status_code == 200
    assert f"job.ended to {receiver.url}: try 1 retrying (answered 500 Internal Server Error" in part.text
    assert f'Notifies</th><td class="mono">{receiver.url}<' in part.text
    assert part.headers["X-Job-Active"] == "1"  # ended, but its notifications are still to be tried


def test_the_timeline_of_a_job_whose_notifications_are_done_is_still(notifying: Callable[..., Daemon], receiver: Receiver) -> None:
    daemon = notifying()
    job = daemon.alice.submit("detectnet_v2", "exit", "0", notify=[receiver.url])
    daemon.alice.wait_for(job["id"], "succeeded")
    wait_for_events(daemon.alice, job["id"], lambda found: len(found) == 2)
    part = daemon.alice.get(f"/ui/parts/job/{job['id']}")
    assert "try 1 delivered (answered 200 OK)" in part.text and part.headers["X-Job-Active"] == "0"


def test_a_pipeline_tells_of_its_own_end_once_naming_the_step_that_failed(notifying: Callable[..., Daemon], receiver: Receiver) -> None:
    from tests.inprocess.test_pipelines import FLOW, run, wait_pipeline

    daemon = notifying()
    pipeline = run(daemon.alice, FLOW, notify=[receiver.url])
    wait_pipeline(daemon.alice, pipeline["id"], "failed")
    # Each step's start (two ran) and end (three), and the pipeline's own end.
    got = receiver.wait_for(lambda seen: len(delivered(seen)) == 6)
    [ended] = delivered(got, "pipeline.ended")
    secret = daemon.alice.post("/v1/notify/secret").json()["secret"]
    assert ended.signed_with(secret)
    body = ended.json()
    second = pipeline["steps"][1]
    assert (body["pipeline_id"], body["source"], body["status"], body["exit_code"], body["owner_uid"]) == (
        pipeline["id"], "flow.yaml", "failed", 3, 1001,
    )  # fmt: skip
    assert [(step["name"], step["status"]) for step in body["steps"]] == [
        ("first", "succeeded"),
        ("second", "failed"),
        ("third", "cancelled"),
    ]
    assert body["text"].startswith(f"tao pipeline {pipeline['id']} (flow.yaml)") and "failed at step second (exit code 3)" in body["text"]
    assert body["steps"][2]["error"] == f"not started: its dependency {second['job_id']} (step second) failed (exit code 3)"

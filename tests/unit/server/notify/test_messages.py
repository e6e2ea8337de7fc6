"""What a notification is made of: its URL checked and masked, its body and chat line, its signature, when it is tried again, what an answer means."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from tao_server.errors import InvalidRequest
from tao_server.models import JobPublic, JobStatus
from tao_server.notify import payload, signing
from tao_server.notify.notify_models import ENDED, STARTED, Delivery
from tao_server.notify.sender import Backoff
from tao_server.notify.transport import _meaning
from tao_server.notify.urls import masked, parse

# -- URLs --------------------------------------------------------------------------------------------


def test_a_url_is_read_into_what_a_delivery_needs() -> None:
    url = parse("https://Hooks.Example:8443/services/a?b=c")
    assert (url.scheme, url.host, url.port, url.target) == ("https", "hooks.example", 8443, "/services/a?b=c")
    assert parse("http://[::1]/").host == "::1"
    assert parse("http://[::1]/").port == 80
    assert parse("https://h").target == "/"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("ftp://host/", "only http:// and https://"),
        ("file:///etc/passwd", "only http:// and https://"),
        ("http:///path", "names no host"),
        ("http://host:99999/", "not a valid URL"),
        ("http://ho st/", "spaces, control or non-ASCII"),
        ("http://hôst/", "spaces, control or non-ASCII"),
        ("", "expected an http:// or https:// URL"),
        ("http://h/" + "a" * 3000, "at most 2048"),
    ],
)
def test_a_bad_url_is_refused_naming_the_field_and_what_is_allowed(text: str, says: str) -> None:
    with pytest.raises(InvalidRequest, match=says) as refused:
        parse(text, "notify[2]")
    assert refused.value.field == "notify[2]"
    assert refused.value.message.startswith("notify[2]: ")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "https://hooks.slack.com/services/T0000000/B0000000/XXXXXXXXXXXXXXXXXXXXabcd",
            "https://hooks.slack.com/services/****0000/****0000/****abcd",
        ),
        ("https://user:hunter2@host.example/hook", "https://user:****@host.example/hook"),
        ("https://tokentokentoken@host.example/", "https://****@host.example/"),
        ("http://127.0.0.1:9000/hook?token=abc&x", "http://127.0.0.1:9000/hook?token=****&****"),
        ("http://[::1]:9000/a", "http://[::1]:9000/a"),
        ("not a url", "****"),
    ],
)
def test_credentials_in_a_url_are_masked_wherever_it_is_shown(text: str, shown: str) -> None:
    assert masked(text) == shown


def test_a_masked_url_never_holds_its_secret() -> None:
    secret = "Zq3xPc9LmN2vRt7kYb4w"
    for text in (f"https://h/x/{secret}", f"https://u:{secret}@h/", f"https://h/?k={secret}", f"https://{secret}@h/"):
        assert secret not in masked(text)


# -- the body and its line ---------------------------------------------------------------------------


def job(**fields: object) -> JobPublic:
    started = datetime(2026, 12, 8, 10, 0, 0, tzinfo=UTC)
    base: dict[str, object] = {
        "id": "k3m9x2ab",
        "task": "detectnet_v2",
        "subtask": "train",
        "image": "nvcr.io/tao:1",
        "owner_uid": None,
        "status": JobStatus.failed,
        "exit_code": 1,
        "started_at": started,
        "finished_at": started + timedelta(minutes=12, seconds=34),
    }
    return JobPublic.model_validate({**base, **fields})


def test_the_body_says_everything_the_issue_asks_and_a_chat_line() -> None:
    now = datetime(2026, 12, 8, 10, 13, 0, tzinfo=UTC)
    body = json.loads(payload.body(ENDED, "d1", job(), "https://tao.example/ui/jobs/k3m9x2ab", now))
    assert body["event"] == "job.ended" and body["delivery"] == "d1" and body["time"] == "2026-12-08T10:13:00Z"
    assert (body["job_id"], body["task"], body["subtask"], body["status"], body["exit_code"]) == (
        "k3m9x2ab",
        "detectnet_v2",
        "train",
        "failed",
        1,
    )
    assert body["duration_seconds"] == 754.0
    assert body["progress"] is None and body["kpi"] is None and body["error"] is None
    assert body["url"] == "https://tao.example/ui/jobs/k3m9x2ab"
    assert body["text"] == "tao job k3m9x2ab (detectnet_v2 train) failed with exit code 1 after 12:34 https://tao.example/ui/jobs/k3m9x2ab"


def test_the_line_names_a_launcher_error_and_a_start_has_no_duration() -> None:
    now = datetime(2026, 12, 8, 10, 0, 1, tzinfo=UTC)
    errored = json.loads(payload.body(ENDED, "d", job(status=JobStatus.error, exit_code=125, error="image gone"), None, now))
    assert errored["text"] == "tao job k3m9x2ab (detectnet_v2 train) error after 12:34: image gone"
    started = json.loads(payload.body(STARTED, "d", job(status=JobStatus.running, exit_code=None, finished_at=None), None, now))
    assert started["text"] == "tao job k3m9x2ab (detectnet_v2 train) started" and started["duration_seconds"] is None
    never = json.loads(payload.body(ENDED, "d", job(status=JobStatus.cancelled, exit_code=None, started_at=None), None, now))
    assert never["text"] == "tao job k3m9x2ab (detectnet_v2 train) cancelled" and never["duration_seconds"] is None


def test_progress_and_kpis_come_from_the_jobs_view_when_it_has_them() -> None:
    shown = job()
    object.__setattr__(shown, "progress", {"epoch": 3, "max_epoch": 10, "kpi": {"mAP": 0.71}})
    body = json.loads(payload.body(ENDED, "d", shown, None, datetime.now(UTC)))
    assert body["progress"]["epoch"] == 3 and body["kpi"] == {"mAP": 0.71}


# -- the signature -----------------------------------------------------------------------------------


def test_the_signature_is_the_hmac_sha256_of_the_body_with_the_secret() -> None:
    body = b'{"event":"job.ended"}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    headers = signing.headers("s3cret", body, "d1", ENDED, 1796000000.9)
    assert headers["X-Tao-Signature-256"] == f"sha256={expected}"
    assert (headers["X-Tao-Delivery"], headers["X-Tao-Timestamp"], headers["X-Tao-Event"]) == ("d1", "1796000000", "job.ended")
    assert headers["Content-Type"] == "application/json"


def test_each_secret_is_new_and_long() -> None:
    made = {signing.new_secret() for _ in range(20)}
    assert len(made) == 20 and all(len(secret) == 64 for secret in made)


# -- tries -------------------------------------------------------------------------------------------


def test_backoff_doubles_from_the_first_delay_to_the_longest_with_jitter() -> None:
    backoff = Backoff(first=10, longest=60)
    for tries, top in ((1, 10), (2, 20), (3, 40), (4, 60), (9, 60)):
        delays = [backoff.delay(tries) for _ in range(50)]
        assert all(top / 2 <= delay <= top for delay in delays)
        assert len(set(delays)) > 1  # jitter: receivers are not hit by every daemon at the same instant


def test_the_next_try_counts_from_the_last() -> None:
    delivery = Delivery(
        id="d", event=ENDED, owner_uid=0, url="u", body="{}", created_at=100.0, next_try_at=100.0, tries=1, last_try_at=500.0
    )
    assert 505.0 <= Backoff(first=10).next_try(delivery) <= 510.0


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"),
        (204, "delivered"),
        (500, "retry"),
        (503, "retry"),
        (429, "retry"),
        (408, "retry"),
        (404, "failed"),
        (400, "failed"),
        (410, "failed"),
    ],
)
def test_what_an_answer_means(status: int, outcome: str) -> None:
    assert _meaning(status, "Reason", None, "").outcome == outcome


def test_a_redirect_is_never_followed_and_says_where_it_pointed() -> None:
    answer = _meaning(302, "Found", "http://u:pw@169.254.169.254/latest", "")
    assert answer.outcome == "failed"
    assert "redirects are not followed" in answer.message and "http://u:****@169.254.169.254/latest" in answer.message
    assert "pw" not in answer.message

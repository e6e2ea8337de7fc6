"""Notifications from a real `tao-server` on the real engine, driven by the installed `tao`, posted to receivers on loopback.

Each receiver is an HTTP server on 127.0.0.1 (or 127.0.0.2) that the daemon's policy lists in
`notify_to`, or not; the test scripts its answers and waits for what it saw, never on a guess of
how long a try takes. Nothing is sent off loopback: addresses that must be refused are refused
before anything is sent.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tao_server.testing.daemon import Daemon
from tao_server.testing.receiver import Received, Receiver
from tests.integration.conftest import Gates, make_daemon, tao_as, until

pytestmark = pytest.mark.integration

SHORT_DELAYS = {"TAO_NOTIFY_RETRY_FIRST": "0.05", "TAO_NOTIFY_RETRY_LONGEST": "0.1"}
AN_HOUR = {"TAO_NOTIFY_RETRY_FIRST": "3600", "TAO_NOTIFY_RETRY_LONGEST": "3600"}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def write_policy(directory: Path, *patterns: str) -> Path:
    path = directory / "policy.toml"
    path.write_text("[default]\nnotify_to = [" + ", ".join(f'"{pattern}"' for pattern in patterns) + "]\n")
    path.chmod(0o644)
    return path


@pytest.fixture(scope="module")
def notifying(tmp_path_factory: pytest.TempPathFactory, manifest_file: Path, receiver: Receiver, docker_client: Any) -> Iterator[Daemon]:
    """A daemon whose policy opens the module's receiver (127.0.0.1:ITS_PORT), and nothing else, to notifications."""
    root = tmp_path_factory.mktemp("notify")
    policy = write_policy(root, f"127.0.0.1:{receiver.port}")
    running = make_daemon(root / "daemon", manifest_file, "--policy", str(policy), env=SHORT_DELAYS).start()
    yield running
    running.stop()
    running.remove_containers()


def delivered(seen: list[Received], job_id: str | None = None) -> list[Received]:
    return [got for got in seen if got.status < 300 and (job_id is None or got.json()["job_id"] == job_id)]


def events(daemon: Daemon, job_id: str) -> list[dict[str, Any]]:
    """The job's notify events, as `tao events JOB --json` prints them."""
    shown = daemon.tao("events", job_id, "--json")
    assert shown.returncode == 0, shown.stderr
    return [event["data"] for line in shown.stdout.decode().splitlines() if (event := json.loads(line))["type"] == "notify"]


def wait_for_events(daemon: Daemon, job_id: str, done: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def settled() -> bool:
        found[:] = events(daemon, job_id)
        return done(found)

    until(settled, f"job {job_id}'s notify events")
    return found


def test_a_delivery_answered_500_is_tried_again_after_a_restart_and_arrives_once_signed(
    new_daemon: Callable[..., Daemon], receiver: Receiver, tmp_path: Path
) -> None:
    """The first daemon plans the next try an hour away and stops; the one that takes over its data dir tries it."""
    policy = write_policy(tmp_path, f"127.0.0.1:{receiver.port}")
    first = new_daemon("--policy", str(policy), env=AN_HOUR).start()
    receiver.answer(500)
    ran = first.tao("--notify", receiver.url, "--id", "told-across-restart", "detectnet_v2", "exit", "3")
    assert ran.returncode == 3, ran.stderr
    waiting = wait_for_events(first, "told-across-restart", lambda found: len(found) == 2)
    retried = [event for event in waiting if event["outcome"] == "retrying"]
    assert len(retried) == 1 and retried[0]["status"] == 500 and retried[0]["next_try_at"]
    secret = first.tao("notify", "secret").stdout.decode().strip()
    first.stop()

    second = new_daemon("--policy", str(policy), root=first.root, env=SHORT_DELAYS).start()
    got = receiver.wait_for(lambda seen: len(delivered(seen, "told-across-restart")) == 2)
    mine = [each for each in got if each.json()["job_id"] == "told-across-restart"]
    by_delivery: dict[str, list[Received]] = {}
    for each in mine:
        by_delivery.setdefault(each.headers["x-tao-delivery"], []).append(each)
    assert sorted(len(tries) for tries in by_delivery.values()) == [1, 2]
    again = by_delivery[retried[0]["delivery"]]
    assert [each.status for each in again] == [500, 200] and again[0].body == again[1].body
    assert all(each.signed_with(secret) for each in mine)
    ended = next(each.json() for each in mine if each.headers["x-tao-event"] == "job.ended")
    assert (ended["event"], ended["status"], ended["exit_code"], ended["task"]) == ("job.ended", "failed", 3, "detectnet_v2")
    assert "failed with exit code 3" in ended["text"]
    assert ended["url"] is not None and ended["url"].endswith("/ui/jobs/told-across-restart")  # the loopback dashboard
    assert second.tao("notify", "secret").stdout.decode().strip() == secret
    after = wait_for_events(second, "told-across-restart", lambda found: len(found) == 3)
    assert [(e["try"], e["outcome"]) for e in after if e["delivery"] == retried[0]["delivery"]] == [(1, "retrying"), (2, "delivered")]
    shown = second.tao("events", "told-across-restart")
    assert f"{retried[0]['event']} to {receiver.url}: try 2 delivered (answered 200 OK)".encode() in shown.stdout
    assert f"notify:    {receiver.url}\n".encode() in second.tao("show", "told-across-restart").stdout


def test_tao_events_follows_a_job_until_it_ends(notifying: Daemon, receiver: Receiver, gates: Gates) -> None:
    submitted = notifying.tao(
        "--mounts",
        str(gates.mounts),
        "--notify",
        receiver.url,
        "-d",
        "--id",
        "followed",
        "detectnet_v2",
        "run",
        "sh",
        "-c",
        gates.wait("go"),
    )
    assert submitted.returncode == 0, submitted.stderr
    follower = notifying.popen_tao("events", "-f", "followed")
    receiver.wait_for(lambda seen: any(got.json()["job_id"] == "followed" and got.status == 200 for got in seen))
    assert follower.poll() is None  # the job runs: the follower waits for more
    gates.open("go")
    out, err = follower.communicate(timeout=120)
    assert follower.returncode == 0, err
    assert f"notify job.started to {receiver.url}: try 1 delivered (answered 200 OK)".encode() in out


@pytest.mark.parametrize(
    ("url", "address", "named"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "link-local"),
        ("http://127.0.0.2:{port}/hook", "127.0.0.2", "loopback"),
        ("http://127.0.0.1:{other}/hook", "127.0.0.1", "loopback"),
    ],
)
def test_an_address_the_policy_does_not_open_exits_125_naming_it_and_the_rule(
    notifying: Daemon, receiver: Receiver, url: str, address: str, named: str
) -> None:
    listed = notifying.tao("list", "--all", "--json").stdout
    seen = len(receiver.seen)
    ran = notifying.tao("--notify", url.format(port=receiver.port, other=receiver.port + 1), "detectnet_v2", "exit", "0")
    assert ran.returncode == 125, ran.stderr
    said = ran.stderr.decode()
    assert said.startswith("tao: error: notify[0]: ") and f"{address} is a {named}" in said
    assert f"notify_to in {notifying.root.parent / 'policy.toml'} [default]: 127.0.0.1:{receiver.port}" in said
    assert notifying.tao("list", "--all", "--json").stdout == listed  # nothing was recorded
    assert len(receiver.seen) == seen


def test_a_redirect_to_an_address_the_policy_does_not_open_is_not_followed(notifying: Daemon, receiver: Receiver) -> None:
    elsewhere = Receiver(host="127.0.0.2").start()
    try:
        seen = len(receiver.seen)
        for _ in range(2):  # the start's and the end's
            receiver.answer(302, {"Location": elsewhere.url})
        ran = notifying.tao("--notify", receiver.url, "--id", "redirected", "detectnet_v2", "exit", "0")
        assert ran.returncode == 0, ran.stderr
        told = wait_for_events(notifying, "redirected", lambda found: len(found) == 2)
        assert {(event["outcome"], event["status"]) for event in told} == {("failed", 302)}
        assert all(f"a redirect to {elsewhere.url}: redirects are not followed" in event["message"] for event in told)
        assert elsewhere.seen == [] and len(receiver.seen) == seen + 2
    finally:
        elsewhere.stop()


def test_each_user_has_their_own_defaults_and_secret(
    shared_daemons: Callable[..., Daemon], receiver: Receiver, unprivileged_user: tuple[str, int, int]
) -> None:
    policy = write_policy(Path(tempfile.mkdtemp(prefix="tao-notify-policy-")), f"127.0.0.1:{receiver.port}")
    daemon = shared_daemons("--policy", str(policy))
    default = f"{receiver.url}/user-default-0123456789"
    added = tao_as(daemon, unprivileged_user, "notify", "add", default)
    assert added.returncode == 0, added.stderr
    masked = f"{receiver.url}/****6789"
    assert added.stdout.decode() == f"every new job of yours now posts its start and end to {masked}\n"
    assert tao_as(daemon, unprivileged_user, "notify", "list").stdout.decode() == f"{masked}\n"
    assert daemon.tao("notify", "list").stdout.decode().startswith("no default URLs")  # the daemon's user has none
    theirs = tao_as(daemon, unprivileged_user, "notify", "secret").stdout.decode().strip()
    mine = daemon.tao("notify", "secret").stdout.decode().strip()
    assert len(theirs) == len(mine) == 64 and theirs != mine

    ran = tao_as(daemon, unprivileged_user, "detectnet_v2", "exit", "0")
    assert ran.returncode == 0, ran.stderr
    job_id = json.loads(daemon.tao("list", "--all", "--json").stdout)[0]["id"]
    got = receiver.wait_for(lambda seen: len(delivered(seen, job_id)) == 2)
    posted = delivered(got, job_id)
    assert {each.path for each in posted} == {"/hook/user-default-0123456789"}
    assert all(each.signed_with(theirs) and not each.signed_with(mine) for each in posted)
    assert {each.json()["owner_uid"] for each in posted} == {unprivileged_user[1]}

    removed = tao_as(daemon, unprivileged_user, "notify", "rm", masked)
    assert removed.returncode == 0 and removed.stdout.decode() == f"removed {masked}\n", removed.stderr
    refused = tao_as(daemon, unprivileged_user, "notify", "add", "http://169.254.169.254/")
    assert refused.returncode == 125 and b"169.254.169.254 is a link-local address" in refused.stderr
    assert tao_as(daemon, unprivileged_user, "notify", "list").stdout.decode().startswith("no default URLs")

"""Exclusive GPUs (tao_server.jobs.gpus.scheduler): hand-overs, waiting aside, usage and fresh plans around gpu_line's decisions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from tao_server.jobs.gpus.gpu_line import LineRule
from tao_server.jobs.gpus.scheduler import GpuScheduler

FOUR = ["0", "1", "2", "3"]


def _never() -> bool:
    return False


def test_counts_indices_and_all_get_free_devices():
    gpus = GpuScheduler(FOUR)
    assert gpus.acquire("a", "count:2", _never) == ["0", "1"]
    assert gpus.acquire("b", "ids:3", _never) == ["3"]
    assert gpus.holders() == {"0": "a", "1": "a", "2": None, "3": "b"}
    gpus.release("a")
    gpus.release("b")
    assert gpus.acquire("c", "all", _never) == FOUR


def _acquire_in_background(
    gpus: GpuScheduler, job: str, request: str, got: dict[str, list[str] | None], stop: threading.Event | None = None, **owner: int
) -> threading.Thread:
    thread = threading.Thread(target=lambda: got.__setitem__(job, gpus.acquire(job, request, (stop or threading.Event()).is_set, **owner)))
    thread.start()
    return thread


def _wait_until(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)


def test_a_waiting_job_starts_when_devices_free():
    gpus = GpuScheduler(FOUR)
    gpus.acquire("big", "all", _never)
    got: dict[str, list[str] | None] = {}
    waiter = _acquire_in_background(gpus, "small", "count:1", got)
    _wait_until(lambda: gpus.position("small") == 1)
    assert "small" not in got
    gpus.release("big")
    waiter.join(timeout=30)
    assert got["small"] == ["0"]


def test_a_small_job_never_overtakes_an_earlier_large_one():
    gpus = GpuScheduler(FOUR)
    gpus.acquire("running", "count:3", _never)  # one device free
    got: dict[str, list[str] | None] = {}
    large = _acquire_in_background(gpus, "large", "count:2", got)
    _wait_until(lambda: gpus.position("large") == 1)
    small = _acquire_in_background(gpus, "small", "count:1", got)
    _wait_until(lambda: gpus.position("small") == 2)
    time.sleep(0.3)
    assert got == {}  # the free device waits for the job at the head of the line
    gpus.release("running")
    large.join(timeout=30)
    small.join(timeout=30)
    assert got == {"large": ["0", "1"], "small": ["2"]}


def test_a_cancelled_waiter_leaves_the_line():
    gpus = GpuScheduler(FOUR)
    gpus.acquire("running", "all", _never)
    got: dict[str, list[str] | None] = {}
    stop = threading.Event()
    first = _acquire_in_background(gpus, "first", "count:2", got, stop)
    _wait_until(lambda: gpus.position("first") == 1)
    second = _acquire_in_background(gpus, "second", "count:1", got)
    _wait_until(lambda: gpus.position("second") == 2)
    stop.set()
    first.join(timeout=30)
    assert got["first"] is None
    _wait_until(lambda: gpus.position("second") == 1)
    gpus.release("running")
    second.join(timeout=30)
    assert got["second"] == ["0"]


def test_no_device_is_ever_given_to_two_jobs():
    gpus = GpuScheduler(FOUR)
    held: dict[str, str] = {}
    lock = threading.Lock()
    clashes: list[str] = []

    def job(name: str) -> None:
        devices = gpus.acquire(name, "count:1", _never) or []
        with lock:
            for device in devices:
                if device in held:
                    clashes.append(device)
                held[device] = name
        time.sleep(0.01)
        with lock:
            for device in devices:
                del held[device]
        gpus.release(name)

    threads = [threading.Thread(target=job, args=(f"job{i}",)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert clashes == []
    assert gpus.holders() == dict.fromkeys(FOUR)


def test_devices_found_after_a_restart_are_held():
    gpus = GpuScheduler(FOUR)
    gpus.hold("resumed", ["1", "2"])
    assert gpus.acquire("new", "count:2", _never) == ["0", "3"]


def test_a_job_at_its_owners_cap_waits_without_holding_up_the_line():
    gpus = GpuScheduler(FOUR)
    assert gpus.acquire("alice-1", "count:1", _never, owner=1001, cap=1) == ["0"]
    got: dict[str, list[str] | None] = {}
    capped = _acquire_in_background(gpus, "alice-2", "count:1", got, owner=1001, cap=1)
    _wait_until(lambda: gpus.position("alice-2") == 1)
    # bob came later, but alice's second job may not run yet, so bob is not made to wait behind it.
    assert gpus.acquire("bob-1", "count:2", _never, owner=1002, cap=2) == ["1", "2"]
    assert "alice-2" not in got
    gpus.release("alice-1")
    capped.join(timeout=30)
    assert got["alice-2"] == ["0"]


def test_request_sizes():
    gpus = GpuScheduler(FOUR)
    assert [gpus.size(r) for r in ("count:3", "ids:1,3", "all")] == [3, 2, 4]


def test_grants_go_out_in_line_order_without_a_thread_per_waiting_job():
    gpus = GpuScheduler(["0"])
    granted: list[tuple[str, list[str]]] = []

    def to(job: str) -> Callable[[list[str]], None]:
        return lambda devices: granted.append((job, devices))

    for job in ("a", "b", "c"):
        gpus.request(job, "count:1", to(job))
    assert granted == [("a", ["0"])]
    assert [gpus.position(job) for job in ("b", "c")] == [1, 2]
    assert gpus.withdraw("b")
    assert not gpus.withdraw("b")
    gpus.release("a")
    assert granted == [("a", ["0"]), ("c", ["0"])]


def test_capped_jobs_ahead_do_not_count_in_a_position():
    gpus = GpuScheduler(["0", "1"], LineRule.fifo)
    gpus.request("alice-1", "count:1", lambda devices: None, owner=1, cap=1)
    gpus.request("alice-2", "count:1", lambda devices: None, owner=1, cap=1)  # capped: waits aside
    gpus.request("bob-big", "count:2", lambda devices: None, owner=2)
    assert gpus.position("alice-2") == 1
    assert gpus.position("bob-big") == 1  # next, although alice-2 came first


def test_a_failing_hand_over_does_not_strand_the_other_grants():
    gpus = GpuScheduler(["0", "1"])
    gpus.hold("running", ["0", "1"])
    granted: list[str] = []

    def broken(devices: list[str]) -> None:
        raise RuntimeError("boom")

    gpus.request("first", "count:1", broken)
    gpus.request("second", "count:1", lambda devices: granted.append("second"))
    gpus.release("running")
    assert granted == ["second"]


def test_requests_this_host_cannot_hold():
    gpus = GpuScheduler(FOUR)
    assert gpus.can_ever_fit("count:4") and gpus.can_ever_fit("ids:0,3") and gpus.can_ever_fit("all")
    assert not gpus.can_ever_fit("count:5")
    assert not gpus.can_ever_fit("ids:7")
    assert not GpuScheduler([]).can_ever_fit("all")


class _Clock:
    """Time as a test sets it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_job_waiting_for_its_image_gets_no_devices_until_it_is_ready():
    gpus = GpuScheduler(FOUR)
    granted: list[str] = []
    gpus.request("pulling", "count:1", lambda devices: granted.append("pulling"), ready=False)
    assert granted == [] and gpus.wait("pulling") is not None and gpus.wait("pulling").reason == "image"  # type: ignore[union-attr]
    assert gpus.holders() == dict.fromkeys(FOUR)
    assert gpus.ready("pulling")
    assert granted == ["pulling"]
    assert not gpus.ready("pulling")  # no longer waiting


def test_running_jobs_charge_their_owner_and_the_line_follows_fair_share():
    clock = _Clock()
    gpus = GpuScheduler(["0", "1"], LineRule.fair, half_life=3600.0, clock=clock)
    order: list[str] = []
    gpus.request("alice-1", "count:2", lambda devices: order.append("alice-1"), owner=1)
    clock.now += 100.0
    assert gpus.usage(1) == pytest.approx(200.0, rel=0.01)
    gpus.request("alice-2", "count:2", lambda devices: order.append("alice-2"), owner=1)
    gpus.request("bob-1", "count:2", lambda devices: order.append("bob-1"), owner=2)
    assert gpus.wait("bob-1").position == 1 and gpus.wait("alice-2").behind == "bob-1"  # type: ignore[union-attr]
    gpus.release("alice-1")
    assert order == ["alice-1", "bob-1"]


def test_usage_from_before_a_restart_counts():
    clock = _Clock()
    gpus = GpuScheduler(["0"], LineRule.fair, half_life=3600.0, clock=clock)
    gpus.charge(1, 7200.0, at=clock.now - 3600.0)  # a job that ended an hour before this daemon started
    assert gpus.usage(1) == pytest.approx(3600.0)


def test_a_job_found_running_after_a_restart_keeps_its_time_limit_for_reservations():
    clock = _Clock()
    gpus = GpuScheduler(FOUR, LineRule.backfill, grace=10.0, clock=clock)
    gpus.hold("resumed", ["0", "1", "2"], owner=1, since=clock.now - 50.0, time_limit=300.0)
    gpus.request("big", "count:4", lambda devices: None, owner=2)
    assert gpus.wait("big").reserved_from == clock.now - 50.0 + 300.0 + 10.0  # type: ignore[union-attr]


def test_a_fresh_plan_follows_usage_as_time_passes():
    clock = _Clock()
    gpus = GpuScheduler(FOUR, LineRule.fair, half_life=1e9, clock=clock, replan_interval=0.05)
    gpus.hold("alice-running", ["0"], owner=1)
    gpus.hold("carol-running", ["1", "2"], owner=3)
    gpus.charge(2, 50.0, at=clock.now)
    granted: list[str] = []
    gpus.request("alice-big", "count:2", lambda devices: granted.append("alice-big"), owner=1)
    gpus.request("bob-small", "count:1", lambda devices: granted.append("bob-small"), owner=2)
    assert gpus.wait("alice-big").position == 1 and granted == []  # type: ignore[union-attr]
    # alice's running job adds a GPU-second each second: past 50 she stands behind bob, whose job fits.
    clock.now += 60.0
    _wait_until(lambda: granted == ["bob-small"])

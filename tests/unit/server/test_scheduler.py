"""Exclusive GPU assignment, first come first served (tao_server.scheduler)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tao_server.jobs.scheduler import GpuScheduler

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
    gpus = GpuScheduler(["0", "1"])
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

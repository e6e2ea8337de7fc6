"""The GPU line's decisions (tao_server.jobs.gpus.gpu_line, fair_share): fairness, reservations, backfill, no starvation.

Pure: every plan is made from given state and a given time, so each test states a situation and
reads the decision. The simulations at the end run whole lines on a virtual clock.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass, field

import pytest

from tao_server.jobs.gpus.fair_share import Account, Usage
from tao_server.jobs.gpus.gpu_line import Holding, LineRule, Plan, Waiting, plan

FOUR = ["0", "1", "2", "3"]
ALICE, BOB, CAROL = 1001, 1002, 1003


def _plan(holding: list[Holding], waiting: list[Waiting], rule: LineRule = LineRule.backfill, now: float = 0.0, **usage: float) -> Plan:
    used: dict[Account, float] = {ALICE: usage.get("alice", 0.0), BOB: usage.get("bob", 0.0), CAROL: usage.get("carol", 0.0)}
    return plan(FOUR, holding, waiting, lambda owner: used.get(owner, 0.0), rule, now)


def _granted(made: Plan) -> dict[str, list[str]]:
    return {grant.job_id: grant.devices for grant in made.grants}


# -- fifo and fair share ------------------------------------------------------------------------------


def test_fifo_serves_in_arrival_order_across_users():
    waiting = [Waiting("alice-1", "count:4", 1, ALICE), Waiting("bob-1", "count:1", 2, BOB)]
    made = _plan([Holding("running", ("0",), CAROL)], waiting, LineRule.fifo, alice=1e6)
    assert _granted(made) == {}  # bob's job fits, but alice's came first
    assert made.waits["alice-1"].reason == "devices" and made.waits["bob-1"].behind == "alice-1"


def test_fair_share_serves_the_user_who_used_least_first():
    burst = [Waiting(f"alice-{n}", "count:1", n, ALICE) for n in range(1, 11)]
    made = _plan([Holding("running", ("0", "1", "2"), ALICE)], [*burst, Waiting("bob-1", "count:1", 11, BOB)], alice=500.0)
    assert _granted(made) == {"bob-1": ["3"]}  # bob came last, with no usage: he goes before alice's burst
    assert made.waits["alice-1"].position == 1 and made.waits["alice-10"].position == 10


def test_within_one_user_it_is_first_come_first_served():
    waiting = [Waiting("alice-2", "count:1", 7, ALICE), Waiting("alice-1", "count:1", 3, ALICE)]
    assert _granted(_plan([Holding("running", ("0", "1", "2"), BOB)], waiting)) == {"alice-1": ["3"]}


def test_users_with_equal_standing_are_served_in_arrival_order():
    waiting = [Waiting("bob-1", "count:1", 2, BOB), Waiting("alice-1", "count:1", 1, ALICE)]
    made = _plan([Holding("running", ("0", "1", "2"), CAROL)], waiting, alice=10.0, bob=10.0)
    assert _granted(made) == {"alice-1": ["3"]}


def test_shares_weigh_usage():
    # alice used twice what bob did, but holds three times his shares: she stands lower, so goes first.
    waiting = [Waiting("bob-1", "count:1", 1, BOB, shares=1), Waiting("alice-1", "count:1", 2, ALICE, shares=3)]
    assert _granted(_plan([Holding("running", ("0", "1", "2"), CAROL)], waiting, alice=200.0, bob=100.0)) == {"alice-1": ["3"]}


def test_the_job_at_the_head_that_does_not_fit_holds_the_line_in_fair_mode():
    waiting = [Waiting("bob-big", "count:2", 5, BOB), Waiting("alice-1", "count:1", 1, ALICE)]
    made = _plan([Holding("running", ("0", "1", "2"), CAROL)], waiting, LineRule.fair, alice=100.0)
    assert _granted(made) == {}  # alice's small job fits, but bob stands first and needs two
    assert (made.waits["bob-big"].needs, made.waits["bob-big"].free) == (2, 1)
    assert made.waits["bob-big"].reserved_from is None  # fair mode makes no reservation


def test_a_job_whose_image_is_not_here_waits_aside_and_keeps_its_place():
    waiting = [Waiting("alice-1", "count:1", 1, ALICE, ready=False), Waiting("alice-2", "count:1", 2, ALICE)]
    made = _plan([Holding("running", ("0", "1", "2"), BOB)], waiting)
    assert _granted(made) == {"alice-2": ["3"]}  # the device never idles for a download
    assert made.waits["alice-1"].reason == "image"
    waiting = [Waiting("alice-1", "count:1", 1, ALICE), Waiting("alice-3", "count:1", 3, ALICE)]
    assert _granted(_plan([Holding("running", ("0", "1", "2"), BOB)], waiting)) == {"alice-1": ["3"]}  # ready: first again


def test_a_job_at_its_owners_cap_waits_aside():
    waiting = [Waiting("alice-2", "count:1", 1, ALICE, cap=2), Waiting("bob-1", "count:1", 2, BOB)]
    made = _plan([Holding("alice-1", ("0", "1"), ALICE)], waiting, LineRule.fifo)
    assert _granted(made) == {"bob-1": ["2"]}
    assert made.waits["alice-2"].reason == "cap" and made.waits["alice-2"].position == 1


def test_several_grants_in_one_plan_count_toward_the_cap():
    waiting = [Waiting(f"alice-{n}", "count:1", n, ALICE, cap=2) for n in range(1, 4)]
    made = _plan([], waiting)
    assert _granted(made) == {"alice-1": ["0"], "alice-2": ["1"]}
    assert made.waits["alice-3"].reason == "cap"


# -- reservations and backfill -----------------------------------------------------------------------


def test_a_job_that_ends_before_the_reservation_starts_on_idle_devices():
    holding = [Holding("long", ("0", "1", "2"), BOB, ends_by=100.0)]
    waiting = [Waiting("big", "count:4", 1, ALICE), Waiting("short", "count:1", 2, CAROL, time_limit=60.0)]
    made = _plan(holding, waiting, now=10.0)
    assert _granted(made) == {"short": ["3"]}  # it ends by 70, the big job's devices are free by 100
    assert made.waits["big"].reserved_from == 100.0


def test_a_job_that_would_end_after_the_reservation_waits():
    holding = [Holding("long", ("0", "1", "2"), BOB, ends_by=100.0)]
    waiting = [Waiting("big", "count:4", 1, ALICE), Waiting("too-long", "count:1", 2, CAROL, time_limit=95.0)]
    made = _plan(holding, waiting, now=10.0)
    assert _granted(made) == {}
    assert made.waits["too-long"].behind == "big"


def test_a_job_without_a_time_limit_never_overtakes():
    holding = [Holding("long", ("0", "1", "2"), BOB, ends_by=100.0)]
    waiting = [Waiting("big", "count:4", 1, ALICE), Waiting("unlimited", "count:1", 2, CAROL)]
    assert _granted(_plan(holding, waiting, now=10.0)) == {}


def test_the_grace_counts_toward_a_jobs_latest_end():
    holding = [Holding("long", ("0", "1", "2"), BOB, ends_by=100.0)]
    waiting = [Waiting("big", "count:4", 1, ALICE), Waiting("short", "count:1", 2, CAROL, time_limit=85.0)]
    assert _granted(plan(FOUR, holding, waiting, lambda owner: 0.0, LineRule.backfill, 10.0, grace=10.0)) == {}
    assert _granted(plan(FOUR, holding, waiting, lambda owner: 0.0, LineRule.backfill, 10.0, grace=5.0)) == {"short": ["3"]}


def test_devices_the_reservation_does_not_need_take_any_timed_job():
    holding = [Holding("on-2", ("2",), BOB, ends_by=50.0)]
    waiting = [Waiting("wants-2", "ids:2", 1, ALICE), Waiting("long", "count:2", 2, CAROL, time_limit=1000.0)]
    made = _plan(holding, waiting, now=0.0)
    assert _granted(made) == {"long": ["0", "1"]}  # device 2 is all the head needs, and these are not it
    assert made.waits["wants-2"].reserved_from == 50.0


def test_a_running_job_without_a_limit_leaves_the_reservation_unknown():
    holding = [Holding("forever", ("0", "1"), BOB)]
    waiting = [Waiting("big", "count:4", 1, ALICE), Waiting("short", "count:1", 2, CAROL, time_limit=1.0)]
    made = _plan(holding, waiting, now=0.0)
    assert _granted(made) == {}  # however short, it could delay the head: nobody knows when the head starts
    assert made.waits["big"].reserved_from is None


def test_backfill_prefers_devices_outside_the_reservation():
    holding = [Holding("a", ("0",), BOB, ends_by=30.0), Holding("b", ("1",), BOB, ends_by=90.0)]
    waiting = [Waiting("head", "count:3", 1, ALICE), Waiting("filler", "count:1", 2, CAROL, time_limit=500.0)]
    made = _plan(holding, waiting, now=0.0)
    assert made.waits["head"].reserved_from == 30.0  # devices 2, 3 free now and 0 by 30: device 1 is spare
    assert _granted(made) == {}  # the only idle devices (2, 3) are reserved and the filler ends too late


def test_fifo_and_fair_never_backfill():
    holding = [Holding("long", ("0", "1", "2"), BOB, ends_by=100.0)]
    waiting = [Waiting("big", "count:4", 1, ALICE), Waiting("short", "count:1", 2, CAROL, time_limit=1.0)]
    for rule in (LineRule.fifo, LineRule.fair):
        assert _granted(_plan(holding, waiting, rule, now=10.0)) == {}


def test_the_same_state_gives_the_same_plan():
    waiting = [Waiting(f"j{n}", f"count:{1 + n % 3}", n, 1000 + n % 4, time_limit=float(n) if n % 2 else None) for n in range(40)]
    holding = [Holding("h", ("1",), 1000, ends_by=33.0)]
    assert _plan(holding, waiting, now=5.0, alice=3.0) == _plan(holding, waiting, now=5.0, alice=3.0)


# -- usage -------------------------------------------------------------------------------------------


def test_usage_halves_every_half_life():
    usage = Usage(half_life=60.0)
    usage.add(ALICE, 400.0, at=0.0)
    assert usage.of(ALICE, 60.0) == pytest.approx(200.0)
    assert usage.of(ALICE, 120.0) == pytest.approx(100.0)
    usage.add(ALICE, 100.0, at=120.0)
    assert usage.of(ALICE, 120.0) == pytest.approx(200.0)
    assert usage.of(BOB, 120.0) == 0.0


def test_usage_charged_late_is_decayed_to_when_it_was_used():
    usage = Usage(half_life=60.0)
    usage.add(ALICE, 100.0, at=120.0)
    usage.add(ALICE, 400.0, at=0.0)  # a job that ended before the daemon started, charged at start-up
    assert usage.of(ALICE, 120.0) == pytest.approx(200.0)


# -- whole lines on a virtual clock ------------------------------------------------------------------


@dataclass
class _Job:
    name: str
    owner: Account
    gpus: int
    runs: float  # seconds it runs once started
    arrives: float = 0.0
    limit: float | None = None
    started: float | None = None
    reserved: list[float] = field(default_factory=list)  # the reservations it was shown while it waited at the head


def _simulate(jobs: list[_Job], rule: LineRule, half_life: float = 600.0, used: dict[Account, float] | None = None) -> dict[str, _Job]:
    """Run the jobs through plan() on a virtual clock, event by event, charging usage as jobs run."""
    usage, now = Usage(half_life), 0.0
    for owner, gpu_seconds in (used or {}).items():
        usage.add(owner, gpu_seconds, 0.0)
    running: dict[str, tuple[_Job, tuple[str, ...], float]] = {}  # name -> (job, devices, charged up to)
    by_name = {job.name: job for job in jobs}
    while True:
        holding = [Holding(name, devices, job.owner, _latest_end(job)) for name, (job, devices, _) in running.items()]
        waiting = [
            Waiting(job.name, f"count:{job.gpus}", index, job.owner, time_limit=job.limit)
            for index, job in enumerate(jobs)
            if job.started is None and job.arrives <= now
        ]
        made = plan(FOUR, holding, waiting, functools.partial(_usage_at, usage, now), rule, now)
        for grant in made.grants:
            by_name[grant.job_id].started = now
            running[grant.job_id] = (by_name[grant.job_id], tuple(grant.devices), now)
        for name, wait in made.waits.items():
            if wait.reserved_from is not None:
                by_name[name].reserved.append(wait.reserved_from)
        events = [_end(job) for job, _, _ in running.values()] + [job.arrives for job in jobs if job.arrives > now]
        if not events:
            return by_name
        later = min(events)
        for job, devices, charged in running.values():
            usage.add(job.owner, len(devices) * (min(_end(job), later) - charged), min(_end(job), later))
        running = {name: (job, devices, later) for name, (job, devices, _) in running.items() if _end(job) > later}
        now = later


def _usage_at(usage: Usage, now: float, owner: Account) -> float:
    return usage.of(owner, now)


def _end(job: _Job) -> float:
    assert job.started is not None
    return job.started + job.runs


def _latest_end(job: _Job) -> float | None:
    return job.started + job.limit if job.limit is not None and job.started is not None else None


def test_a_burst_does_not_make_a_colleague_wait_for_all_of_it():
    burst = [_Job(f"alice-{n}", ALICE, 1, runs=10.0) for n in range(50)]
    colleague = _Job("bob-1", BOB, 1, runs=10.0, arrives=5.0)
    fair = _simulate([*burst, colleague], LineRule.fair)
    fifo = _simulate([_Job(j.name, j.owner, j.gpus, j.runs, j.arrives) for j in [*burst, colleague]], LineRule.fifo)
    assert fair["bob-1"].started == 10.0  # the first device to free is his
    assert fifo["bob-1"].started == 120.0  # behind all fifty


def test_a_large_job_is_not_starved_by_a_stream_of_small_ones():
    # alice used the box heavily (5,000 GPU-seconds), then asks for all four GPUs while bob and carol keep
    # the line full of one-GPU jobs, two GPUs each. Her usage only decays while theirs grows toward 2 GPUs x
    # half-life / ln 2 = 866 (720 by 800 s): near 840 s she stands first, and from then on nothing
    # overtakes her, so she starts once the jobs running then end (30 s at most), long before the stream does.
    rng = random.Random(7)
    stream = [_Job(f"s{n}", BOB if n % 2 else CAROL, 1, runs=rng.uniform(5, 30), arrives=n * 4.0) for n in range(300)]
    for rule in (LineRule.fair, LineRule.backfill):
        big = _Job("alice-big", ALICE, 4, runs=60.0, arrives=1.0)
        fresh = [big, *[_Job(j.name, j.owner, j.gpus, j.runs, j.arrives, j.limit) for j in stream]]
        done = _simulate(fresh, rule, half_life=300.0, used={ALICE: 5000.0})
        assert done["alice-big"].started is not None and done["alice-big"].started < 900.0, rule


def test_backfilled_jobs_never_delay_the_head():
    # Random lines of one user (so the head stays the head until it starts), every job ending within its
    # limit: whatever was backfilled, the head starts no later than the first reservation it was shown.
    for seed in range(60):
        rng = random.Random(seed)
        jobs = []
        for n in range(30):
            runs = rng.uniform(1, 50)
            limit = runs * rng.uniform(1.0, 2.0) if rng.random() < 0.6 else None
            jobs.append(_Job(f"j{n}", ALICE, rng.choice([1, 1, 2, 4]), runs, arrives=rng.uniform(0, 100), limit=limit))
        jobs.sort(key=lambda job: job.arrives)
        done = _simulate(jobs, LineRule.backfill)
        for job in done.values():
            assert job.started is not None, (seed, job.name)
            if job.reserved:
                assert job.started <= job.reserved[0] + 1e-9, (seed, job.name, job.started, job.reserved)


def test_backfill_uses_more_of_the_devices_than_fifo():
    rng = random.Random(11)
    jobs = [
        _Job(
            f"j{n}",
            1000 + n % 4,
            rng.choice([1, 1, 2, 4]),
            runs := rng.uniform(2, 60),
            arrives=n * 3.0,
            limit=runs * 1.5 if n % 3 == 0 else None,
        )
        for n in range(120)
    ]
    spans = {}
    for rule in LineRule:
        done = _simulate([_Job(j.name, j.owner, j.gpus, j.runs, j.arrives, j.limit) for j in jobs], rule)
        spans[rule] = max(job.started + job.runs for job in done.values() if job.started is not None)
    assert spans[LineRule.backfill] <= spans[LineRule.fifo]
    assert not math.isinf(spans[LineRule.backfill])

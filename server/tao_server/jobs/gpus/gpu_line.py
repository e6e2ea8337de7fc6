"""The GPU line's decisions: which waiting jobs get devices now, and why each of the others waits.

Pure and deterministic: a plan is made from the devices, who holds them and until when, the
waiting jobs, each user's recent usage and the time, all given; nothing here reads a clock or
takes a lock (scheduler.py does both, and carries the plans out). Three rules (`LineRule`):

    fifo      first come, first served across users: a job that fits never overtakes an earlier
              one that does not fit yet, so a job asking for many GPUs is never starved
    fair      the same, in fair-share order (fair_share.py): the user who used the least lately,
              for their shares, goes first; first come, first served within one user
    backfill  fair, and the first job that does not fit (the head) gets a reservation: the
              earliest time enough devices are free, taking each running job's latest end as its
              grant plus its time limit plus the grace (the stop timeout and a hand-off slack),
              and never for a job without a limit. A later job with a time limit may start on
              idle devices if its own latest end comes before the reservation, or if it takes
              none of the reserved devices: either way the head starts no later. A job without
              a time limit never overtakes.

In every rule a job whose image is not here yet (it is pulled while the job waits) and a job whose
owner is at their GPU cap wait aside without holding up the line, and keep their place: once
ready, they go before everyone who came after them in the line's order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from tao_server.jobs.gpus.fair_share import Account, order_key


class LineRule(StrEnum):
    fifo = "fifo"
    fair = "fair"
    backfill = "backfill"


@dataclass(frozen=True)
class Waiting:
    """A job in line: its request ("count:2", "ids:0,3", "all"), its arrival order and what limits it."""

    job_id: str
    request: str
    seq: int
    owner: Account = None
    cap: int | None = None  # GPUs its owner's jobs may hold at once; None: no cap
    shares: float = 1.0
    time_limit: float | None = None  # seconds; None: none, so it never overtakes
    ready: bool = True  # its image is here: devices may be given to it


@dataclass(frozen=True)
class Holding:
    """A job that holds devices, and the latest time it frees them (None: no time limit, no telling)."""

    job_id: str
    devices: tuple[str, ...]
    owner: Account = None
    ends_by: float | None = None


@dataclass(frozen=True)
class Reservation:
    """The head's devices, free by `start` at the latest (math.inf: a running job without a limit must end first)."""

    start: float
    devices: frozenset[str]


WaitReason = Literal["devices", "behind", "image", "cap"]


@dataclass(frozen=True)
class Wait:
    """Why a job still waits: too few free devices (the head), behind another job, its image, or its owner's cap.

    `position` is 1 for the next job to get devices; jobs waiting aside (image, cap) do not count
    ahead of others. `reserved_from` is the head's reservation, when the rule makes one and it is known.
    """

    position: int
    reason: WaitReason
    needs: int
    free: int
    behind: str | None = None
    reserved_from: float | None = None


@dataclass(frozen=True)
class Grant:
    job_id: str
    devices: list[str]


@dataclass
class Plan:
    grants: list[Grant] = field(default_factory=list)
    waits: dict[str, Wait] = field(default_factory=dict)


def size(request: str, inventory: list[str]) -> int:
    """How many devices a request takes."""
    kind, _, value = request.partition(":")
    if kind == "count":
        return int(value)
    return len(value.split(",")) if kind == "ids" else len(inventory)


def fit(request: str, free: list[str], inventory: list[str]) -> list[str] | None:
    """The devices a request gets out of `free` (in inventory order), or None when they are not all free."""
    if request == "all":
        return list(free) if len(free) == len(inventory) else None
    kind, _, value = request.partition(":")
    if kind == "count":
        count = int(value)
        return free[:count] if len(free) >= count else None
    wanted = value.split(",")
    return wanted if all(device in free for device in wanted) else None


def plan(
    inventory: list[str],
    holding: Iterable[Holding],
    waiting: Iterable[Waiting],
    usage: Callable[[Account], float],
    rule: LineRule,
    now: float,
    grace: float = 0.0,
) -> Plan:
    """Who gets devices now under `rule`, and why each of the others waits.

    `usage(owner)` is the owner's decayed GPU-seconds (fair_share.Usage) at `now`; `grace` is added
    to a time limit for a job's latest end (the stop timeout, and the hand-off after it).
    """
    line = _Line(inventory, list(holding), now, grace)
    order = sorted(waiting, key=_ordering(rule, usage))
    result = Plan()
    head: Waiting | None = None
    reservation: Reservation | None = None
    for job in order:
        if not job.ready or line.capped(job):
            continue
        if head is None:
            devices = fit(job.request, line.free, inventory)
            if devices is not None:
                result.grants.append(line.grant(job, devices))
                continue
            head = job
            reservation = line.reserve(job) if rule == LineRule.backfill else None
        elif reservation is not None and job.time_limit is not None:
            devices = line.backfill(job, reservation)
            if devices is not None:
                result.grants.append(line.grant(job, devices))
    granted = {grant.job_id for grant in result.grants}
    result.waits = line.waits([job for job in order if job.job_id not in granted], reservation)
    return result


def _ordering(rule: LineRule, usage: Callable[[Account], float]) -> Callable[[Waiting], tuple[float, int]]:
    if rule == LineRule.fifo:
        return lambda job: (0.0, job.seq)
    standing: dict[tuple[Account, float], float] = {}  # each owner's usage once, however many jobs they queued

    def key(job: Waiting) -> tuple[float, int]:
        if (job.owner, job.shares) not in standing:
            standing[job.owner, job.shares] = order_key(usage(job.owner), job.shares)
        return standing[job.owner, job.shares], job.seq

    return key


class _Line:
    """The devices as a plan goes: free ones, holders and their latest ends, each owner's count."""

    def __init__(self, inventory: list[str], holding: list[Holding], now: float, grace: float) -> None:
        self.inventory = inventory
        self.now = now
        self.grace = grace
        self.holding = holding
        held = {device for holder in holding for device in holder.devices}
        self.free = [device for device in inventory if device not in held]
        self._owned: dict[Account, int] = {}
        for holder in holding:
            self._owned[holder.owner] = self._owned.get(holder.owner, 0) + len(holder.devices)

    def capped(self, job: Waiting) -> bool:
        return job.cap is not None and self._owned.get(job.owner, 0) + size(job.request, self.inventory) > job.cap

    def grant(self, job: Waiting, devices: list[str]) -> Grant:
        self.free = [device for device in self.free if device not in devices]
        self._owned[job.owner] = self._owned.get(job.owner, 0) + len(devices)
        self.holding.append(Holding(job.job_id, tuple(devices), job.owner, self.latest_end(job)))
        return Grant(job.job_id, devices)

    def latest_end(self, job: Waiting) -> float | None:
        return self.now + job.time_limit + self.grace if job.time_limit is not None else None

    def reserve(self, head: Waiting) -> Reservation:
        """The head's devices: those free soonest, and when the last of them is free at the latest."""
        free_at = dict.fromkeys(self.free, self.now)
        for holder in self.holding:
            for device in holder.devices:
                free_at[device] = max(self.now, holder.ends_by) if holder.ends_by is not None else math.inf
        kind, _, value = head.request.partition(":")
        if kind == "ids":
            devices = value.split(",")
        else:
            soonest = sorted(self.inventory, key=lambda device: (free_at[device], self.inventory.index(device)))
            devices = soonest[: size(head.request, self.inventory)]
        return Reservation(max(free_at[device] for device in devices), frozenset(devices))

    def backfill(self, job: Waiting, reservation: Reservation) -> list[str] | None:
        """Idle devices for a later job that cannot delay the head: spare ones, or any if it ends before the reservation."""
        # An unknown start (a running job without a limit) is no time to end before: it may come any moment.
        ends_before = (end := self.latest_end(job)) is not None and reservation.start != math.inf and end <= reservation.start
        spare = [device for device in self.free if device not in reservation.devices]
        kind, _, value = job.request.partition(":")
        if kind == "ids":
            wanted = value.split(",")
            usable = all(device in self.free for device in wanted) and (ends_before or not reservation.devices & set(wanted))
            return wanted if usable else None
        count = size(job.request, self.inventory)
        if len(spare) >= count:
            return spare[:count]
        if ends_before and len(self.free) >= count:
            return spare + [device for device in self.free if device in reservation.devices][: count - len(spare)]
        return None

    def waits(self, remaining: list[Waiting], reservation: Reservation | None) -> dict[str, Wait]:
        waits: dict[str, Wait] = {}
        ahead: Waiting | None = None  # the last job still waiting that may be served
        counted = 0
        for job in remaining:
            needs, free = size(job.request, self.inventory), len(self.free)
            if not job.ready:
                waits[job.job_id] = Wait(counted + 1, "image", needs, free)
            elif self.capped(job):
                waits[job.job_id] = Wait(counted + 1, "cap", needs, free)
            elif ahead is None:
                counted += 1
                known = reservation.start if reservation is not None and reservation.start != math.inf else None
                waits[job.job_id] = Wait(counted, "devices", needs, free, reserved_from=known)
                ahead = job
            else:
                counted += 1
                waits[job.job_id] = Wait(counted, "behind", needs, free, behind=ahead.job_id)
                ahead = job
        return waits

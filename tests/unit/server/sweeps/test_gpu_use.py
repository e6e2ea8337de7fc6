"""What a sweep's trials have held, for its GPU-hours budget: pure arithmetic over job rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tao_server.models import Job
from tao_server.sweeps.driver import gpu_seconds, held_gpus

START = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


def ran(seconds: float, gpus: list[str] | None = None, request: str = "") -> Job:
    return Job(
        id="j", task="t", image="i", gpus=gpus or [], gpu_request=request, started_at=START, finished_at=START + timedelta(seconds=seconds)
    )


@pytest.mark.parametrize(
    ("job", "held"),
    [
        (ran(1, ["0", "3"], "count:2"), 2),  # the devices the daemon gave it
        (ran(1, [], "count:3"), 3),  # Slurm allocates: the count it asked for
        (ran(1, [], "ids:0,3"), 2),
        (ran(1, [], ""), 0),
    ],
)
def test_the_gpus_a_job_holds(job: Job, held: int) -> None:
    assert held_gpus(job) == held


def test_gpu_seconds_count_each_job_s_gpus_times_how_long_it_ran() -> None:
    assert gpu_seconds([ran(60, ["0"]), ran(30, [], "count:2"), Job(id="q", task="t", image="i", gpu_request="count:1")]) == 120

"""Figure 28: a step's hand-off, from the end of the job it waits for to its own container starting.

28a  Docker: `--after A`, from A's container dying to B's container starting, both by the engine's
     clock (its `die` and `start` events): the daemon's end listener settles B, a worker starts it.
28b  Slurm: the same through the daemon, which hands B to Slurm with --dependency=afterok:A as soon
     as A is submitted, against two jobs a careful user submits by hand (`sbatch --dependency=afterok`,
     each `docker run --init --rm` of the same image and task); alternating, on one fresh cluster.

A sleeps a second, so B is waiting (on Docker, in the daemon; on Slurm, in Slurm) before A ends.
"""

from __future__ import annotations

import json
import shlex
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from harness import Daemon, Figure, alternate, bench_daemon
from slurm import SLURM_IMAGE, _until_idle, slurm_daemon

from tao_server.testing.slurm import SlurmCluster

GROUPS = ("28",)  # what bench/run.py asks of this module
LABEL_JOB = "org.tao-launcher.job"
BENCH_LABEL = "org.tao-launcher.bench"  # the hand-written jobs' containers
FIRST = ["detectnet_v2", "sleep", "1"]
NEXT = ["detectnet_v2", "exit", "0"]


@dataclass
class HandoffScale:
    docker_pairs: int
    slurm_pairs: int

    @classmethod
    def full(cls) -> HandoffScale:
        return cls(docker_pairs=30, slurm_pairs=15)

    @classmethod
    def quick(cls) -> HandoffScale:
        return cls(docker_pairs=3, slurm_pairs=1)


def run_group(group: str, scale: HandoffScale) -> list[Figure]:
    daemon = bench_daemon().start()
    try:
        on_docker = docker_handoff(daemon, scale)
    finally:
        daemon.discard()
    return [on_docker, slurm_handoff(scale)]


def docker_handoff(daemon: Daemon, scale: HandoffScale) -> Figure:
    measured = [_through_daemon(daemon, timeout=120, parts=True) for _ in range(scale.docker_pairs)]
    samples = [total for total, _ in measured]
    return Figure(
        "28a",
        "Docker: --after hand-off, a step's container dying -> the next one's starting",
        "s",
        samples,
        "median < 200 ms",
        statistics.median(samples) < 0.2,
        # Where the time goes: to the daemon's record of the end, on to the next container's `create`,
        # and the engine's own create -> start (its floor: no launcher starts a container faster).
        extra={part: statistics.median(split[part] for _, split in measured) for part in ("to_recorded_end", "to_create", "engine_start")},
    )


def slurm_handoff(scale: HandoffScale) -> Figure:
    with slurm_daemon() as (cluster, daemon):
        _through_daemon(daemon, timeout=600)  # the node pulls nothing later: the image is warm for both sides
        through_daemon, by_hand = alternate(
            scale.slurm_pairs,
            lambda: _idle_then(cluster, lambda: _through_daemon(daemon, timeout=600)),
            lambda: _idle_then(cluster, lambda: _by_hand(cluster)),
        )
    ratio = statistics.median(through_daemon) / statistics.median(by_hand)
    return Figure(
        "28b",
        "Slurm: --after hand-off (Slurm holds it) vs sbatch --dependency=afterok by hand",
        "s",
        through_daemon,
        "ratio <= 1.2",
        ratio <= 1.2,
        baseline=by_hand,
        baseline_name="sbatch --dependency",
    )


def _idle_then(cluster: SlurmCluster, measure: Callable[[], float]) -> float:
    _until_idle(cluster)
    return measure()


def _through_daemon(daemon: Daemon, timeout: float, parts: bool = False) -> Any:
    """Seconds from A's container dying to B's starting, B submitted `--after A` while A runs; with `parts`,
    also how they split: to the daemon's record of A's end, on to B's container created, and its start."""
    since = time.time()
    first = daemon.request("POST", "/v1/jobs", {"task": FIRST[0], "subtask": FIRST[1], "args": FIRST[2:]})
    second = daemon.request("POST", "/v1/jobs", {"task": NEXT[0], "subtask": NEXT[1], "args": NEXT[2:], "after": [first["id"]]})
    ended = daemon.wait_for_status(second["id"], ("succeeded", "failed", "cancelled", "error"), timeout=timeout)
    if ended["status"] != "succeeded":
        raise RuntimeError(f"the step after {first['id']} ended {ended['status']}: {ended['error']}")
    events = _engine_events(since, LABEL_JOB, ("start", "die", "create"))
    died = events[(first["id"], "die")]
    total = events[(second["id"], "start")] - died
    if not parts:
        return total
    recorded = datetime.fromisoformat(daemon.job(first["id"])["finished_at"]).timestamp()
    created = events[(second["id"], "create")]
    return total, {
        "to_recorded_end": recorded - died,
        "to_create": created - recorded,
        "engine_start": events[(second["id"], "start")] - created,
    }


def _by_hand(cluster: SlurmCluster) -> float:
    """The same two steps as a user writes them: sbatch, then sbatch --dependency=afterok on its id."""
    tag = f"handoff-{time.time_ns()}"
    since = time.time()

    def wrap(name: str, argv: list[str]) -> str:
        return shlex.join(["docker", "run", "--init", "--rm", "--label", f"{BENCH_LABEL}={tag}-{name}", SLURM_IMAGE, *argv])

    first = cluster.command("sbatch", "--parsable", "--output=/dev/null", "--wrap", wrap("a", FIRST)).strip().split(";")[0]
    cluster.command("sbatch", "--parsable", "--output=/dev/null", f"--dependency=afterok:{first}", "--wrap", wrap("b", NEXT))
    _until_idle(cluster, timeout=600)
    events = _engine_events(since, BENCH_LABEL)
    return events[(f"{tag}-b", "start")] - events[(f"{tag}-a", "die")]


def _engine_events(since: float, label: str, actions: tuple[str, ...] = ("start", "die")) -> dict[tuple[str, str], float]:
    """(the container's `label` value, action) -> when, by the engine's clock, for containers labelled `label`."""
    wanted = [option for action in actions for option in ("--filter", f"event={action}")]
    listed = subprocess.run(
        ["docker", "events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}", "--filter", "type=container",
         *wanted, "--filter", f"label={label}", "--format", "{{json .}}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    events = {}
    for line in listed.splitlines():
        event = json.loads(line)
        events[(event["Actor"]["Attributes"][label], event["Action"])] = int(event["timeNano"]) / 1e9
    return events

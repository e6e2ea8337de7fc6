"""Figures 20-21: a team's job trace through the GPU line, in three modes of the daemon and through Slurm with backfill.

A seeded generator (`make_trace`) writes the trace: 4 users, 50 jobs each (200), on a 4-GPU
inventory in env mode. One user, ana, submits all hers at once (the burst); the others' jobs arrive
at random over a window sized for a load near 90%. Each job sleeps for a time drawn from 2-60 s
(log-uniform), asks for 1, 2 or 4 GPUs (55/30/15%), a third give a time limit (their sleep times
1.2-2, and 2 s for the container's start), and a fifth run images the engine does not have yet
(six of them, each pulled on first use from a local registry through a relay that paces downloads,
so a few megabytes take as long as a TAO image's gigabytes would over a network).

The timeline is compressed: every duration above is multiplied by `TraceScale.scale` (0.12 in full:
sleeps of 0.24-7.2 s, pulls of about 10 s), so the four runs take about 20 minutes; the quick mode
(CI) runs 24 jobs at 0.05 in about 70 s.

    20a  the daemon, --gpu-line fifo: first come, first served, images pulled once a job has its GPUs;
         its jobs give no --time, as before this line kept none (a limit counts from the grant, so
         a pull after the grant would eat into it)
    20b  the daemon, --gpu-line fair: images pulled while jobs wait, fair share between users
    20c  the daemon, --gpu-line backfill: fair, and timed jobs on idle GPUs the head cannot use yet
    20d  Slurm 22.05 on the real single-node cluster (tao_server.testing.slurm: 4 gres GPUs,
         sched/backfill passing every second, priority/basic: no fair share without slurmdbd), each
         job `sbatch --gres=gpu:N [--time]` of a script that pulls the image if missing and then runs
         the same container. Slurm counts limits in whole minutes, so every limit here is 1 minute.
    21a-d the targets: no GPU-seconds held pulling (fair, backfill); utilisation at least Slurm's;
         no user's mean wait above 1.5x another's; the largest job's wait within FIFO's plus the slack

Each run reports: makespan (first submission to last end), GPU utilisation (GPU-seconds of running
tasks over 4 x makespan), GPU-seconds held by jobs pulling images (a job's devices times the part
of its pull that falls after its grant; on Slurm, the pull inside the allocation), each user's mean
and worst wait (submission to the task's start), and the wait of the largest job (most GPU-seconds).
The daemon's users are token users over TCP (uids 2001-2004), so fair share tells them apart.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from harness import IMAGE, ROOT, Figure, bench_daemon

from tao_common.time_limits import slurm_form
from tao_server.testing.registry import PacedRelay, Registry, build_variant, remove_local
from tao_server.testing.slurm import FINAL_STATES, SlurmCluster

GROUPS = ("20",)  # what bench/run.py asks of this module
# The sample image, under TAO_TEST_IMAGE's tag where that is set: checkouts sharing an engine keep their own.
TRACE_IMAGE = os.environ.get("TAO_TEST_IMAGE", IMAGE)
USERS = {"ana": 2001, "ben": 2002, "cai": 2003, "dee": 2004}
BURSTER = "ana"
INVENTORY = 4
LOCAL_TASK = "detectnet_v2"  # runs the sample image, which is always here
PULLED_TASKS = ("yolo_v4", "unet", "ssd", "dssd", "retinanet", "faster_rcnn")  # one registry image each
STOP_TIMEOUT = 1  # seconds: the daemon's, and so the grace a reservation allows past a time limit
START_MARGIN = 2  # seconds a time limit leaves beyond the sleep, for the container's start
MODES = ("fifo", "fair", "backfill")


@dataclass
class TraceScale:
    jobs_per_user: int
    scale: float  # every duration of the trace is multiplied by this
    images: int  # registry images, each pulled on first use
    layer_bytes: int  # each registry image's own layer
    pull_rate: float  # bytes a second the relay sends a download at
    half_life: str  # the daemons' fair-share half-life ([fair_share] in the policy file)
    seed: int = 20

    @classmethod
    def full(cls) -> TraceScale:
        return cls(jobs_per_user=50, scale=0.12, images=6, layer_bytes=48 * 2**20, pull_rate=5e6, half_life="2:00")

    @classmethod
    def quick(cls) -> TraceScale:
        return cls(jobs_per_user=6, scale=0.05, images=2, layer_bytes=4 * 2**20, pull_rate=2e6, half_life="0:20")


@dataclass(frozen=True)
class TraceJob:
    name: str
    user: str
    at: float  # seconds after the trace's start that it is submitted
    gpus: int
    seconds: float  # how long its task sleeps
    limit: int | None  # its --time, in seconds
    image: int | None  # which registry image it runs; None: the local one

    @property
    def task(self) -> str:
        return LOCAL_TASK if self.image is None else PULLED_TASKS[self.image]


def make_trace(scale: TraceScale) -> list[TraceJob]:
    """The trace, the same for a seed: ana's burst early on, the others' jobs at random over the window."""
    rng = random.Random(scale.seed)
    drawn = []
    for user in USERS:
        for _ in range(scale.jobs_per_user):
            seconds = math.exp(rng.uniform(math.log(2), math.log(60))) * scale.scale
            gpus = rng.choices([1, 2, 4], weights=[55, 30, 15])[0]
            limit = math.ceil(seconds * rng.uniform(1.2, 2.0)) + START_MARGIN if rng.random() < 1 / 3 else None
            image = rng.randrange(scale.images) if rng.random() < 0.2 else None
            drawn.append((user, round(seconds, 2), gpus, limit, image))
    # The others' arrivals spread over a window their work would fill to 90%; the burst comes at a fifth of it.
    window = sum(seconds * gpus for user, seconds, gpus, _, _ in drawn if user != BURSTER) / INVENTORY / 0.9
    jobs = []
    for index, (user, seconds, gpus, limit, image) in enumerate(drawn):
        at = window * 0.2 + index % scale.jobs_per_user * 0.01 if user == BURSTER else rng.uniform(0, window)
        jobs.append(TraceJob(f"j{index:03d}", user, round(at, 3), gpus, seconds, limit, image))
    return sorted(jobs, key=lambda job: job.at)


# -- what a run measured --------------------------------------------------------------------------------


@dataclass
class Ran:
    """One job as a run saw it: times in seconds since the epoch."""

    job: TraceJob
    submitted: float
    started: float | None = None
    ended: float | None = None
    devices: int = 0
    pulling_gpu_seconds: float = 0.0
    status: str = ""


@dataclass
class RunResult:
    mode: str
    ran: list[Ran]
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        done = [r for r in self.ran if r.started is not None and r.ended is not None]
        first, last = min(r.submitted for r in self.ran), max(r.ended for r in done if r.ended is not None)
        makespan = last - first
        busy = sum(r.devices * (r.ended - r.started) for r in done if r.ended is not None and r.started is not None)
        waits = {user: [r.started - r.submitted for r in done if r.job.user == user and r.started is not None] for user in USERS}
        largest = max(self.ran, key=lambda r: (r.job.gpus * r.job.seconds, r.job.name))
        means = {user: statistics.mean(values) for user, values in waits.items() if values}
        return {
            "mode": self.mode,
            "jobs": len(self.ran),
            "not_run": sorted(f"{r.job.name}:{r.status}" for r in self.ran if r not in done),
            "makespan_s": round(makespan, 1),
            "utilisation": round(busy / (INVENTORY * makespan), 3),
            "pulling_gpu_seconds": round(sum(r.pulling_gpu_seconds for r in self.ran), 1),
            "users": {user: {"mean_wait_s": round(means[user], 1), "worst_wait_s": round(max(waits[user]), 1)} for user in means},
            "mean_wait_ratio": round(max(means.values()) / max(min(means.values()), 1e-9), 2),
            "colleagues_mean_wait_ratio": _ratio([means[user] for user in means if user != BURSTER]),
            "largest_job": {
                "name": largest.job.name,
                "gpus": largest.job.gpus,
                "seconds": largest.job.seconds,
                "wait_s": round(largest.started - largest.submitted, 1) if largest.started is not None else None,
            },
            **self.extra,
        }


def _ratio(values: list[float]) -> float:
    return round(max(values) / max(min(values), 1e-9), 2)


# -- the figure ---------------------------------------------------------------------------------------


def run_group(group: str, scale: TraceScale) -> list[Figure]:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_sample_image.py"), TRACE_IMAGE], check=True, stdout=subprocess.DEVNULL)
    trace = make_trace(scale)
    with _registry_images(scale) as images:
        results = [_through_daemon(trace, mode, scale, images) for mode in MODES]
        results.append(_through_slurm(trace, images))
    summaries = [result.summary() for result in results]
    _print_table(summaries)
    return _figures(summaries, results)


def _figures(summaries: list[dict[str, Any]], results: list[RunResult]) -> list[Figure]:
    """20a-d: each run, its job waits as samples and the rest as extras; 21a-d: the issue's targets, each met or not."""
    figures = []
    for letter, summary, result in zip("abcd", summaries, results, strict=True):
        waits = [r.started - r.submitted for r in result.ran if r.started is not None]
        name = (
            f"trace {summary['mode']}: makespan {summary['makespan_s']:.0f} s, utilisation {summary['utilisation']:.0%}, "
            f"pulling {summary['pulling_gpu_seconds']:.0f} GPU-s; job waits"
        )
        figures.append(Figure(f"20{letter}", name, "s", waits or [0.0], "(reported)", None, extra=summary))
    fifo, fair, backfill, slurm = summaries
    pulling = max(fair["pulling_gpu_seconds"], backfill["pulling_gpu_seconds"])
    slack = STOP_TIMEOUT + 1.0  # what a reservation may add: the grace past the limits it counts on
    largest, largest_fifo = backfill["largest_job"]["wait_s"], fifo["largest_job"]["wait_s"]
    figures += [
        Figure("21a", "trace: GPU-seconds held by jobs pulling images, fair and backfill lines", "GPU-s", [pulling], "0",
               pulling == 0, extra={"fifo": fifo["pulling_gpu_seconds"], "slurm": slurm["pulling_gpu_seconds"]}),
        Figure("21b", "trace: GPU utilisation, backfill line (Slurm with backfill beside it)", "%", [backfill["utilisation"] * 100],
               ">= Slurm's", backfill["utilisation"] >= slurm["utilisation"], extra={"slurm": slurm["utilisation"] * 100}),
        Figure("21c", "trace: highest over lowest user's mean wait, equal shares, backfill line", "x", [backfill["mean_wait_ratio"]],
               "<= 1.5", backfill["mean_wait_ratio"] <= 1.5,
               extra={name: s["mean_wait_ratio"] for name, s in (("fifo", fifo), ("fair", fair), ("slurm", slurm))}
               | {"colleagues_of_the_burst": backfill["colleagues_mean_wait_ratio"]}),
        Figure("21d", "trace: the largest job's wait, backfill line (FIFO beside it)", "s", [largest if largest is not None else math.inf],
               f"<= FIFO's + {slack:.0f} s", largest is not None and largest_fifo is not None and largest <= largest_fifo + slack,
               extra={"fifo": largest_fifo}),
    ]  # fmt: skip
    return figures


def _print_table(summaries: list[dict[str, Any]]) -> None:
    users = list(USERS)
    head = f"{'mode':<9} {'makespan':>9} {'util':>6} {'pull GPU-s':>10} " + " ".join(f"{u + ' mean/worst':>16}" for u in users)
    print("\n" + head + f" {'largest (GPUs x s): wait':>28}")
    for s in summaries:
        waits = " ".join(f"{s['users'][u]['mean_wait_s']:>7.1f}/{s['users'][u]['worst_wait_s']:<8.1f}" for u in users if u in s["users"])
        largest = s["largest_job"]
        print(
            f"{s['mode']:<9} {s['makespan_s']:>8.1f}s {s['utilisation']:>6.1%} {s['pulling_gpu_seconds']:>10.1f} {waits} "
            f"{largest['gpus']} x {largest['seconds']:.1f}: {largest['wait_s']} s"
        )


# -- the images ---------------------------------------------------------------------------------------


@dataclass
class _Images:
    registry_host: str  # the paced relay's address
    repositories: list[str]  # repository of each image in the registry, tag "1"

    def references(self) -> list[str]:
        return [f"{self.registry_host}/{repository}:1" for repository in self.repositories]

    def remove(self) -> None:
        """Gone from the engine: each is pulled again on first use."""
        remove_local(*self.references())


@contextlib.contextmanager
def _registry_images(scale: TraceScale) -> Iterator[_Images]:
    """A local registry (no logins) holding one variant of the sample image per pulled task, behind a paced relay."""
    root = Path(tempfile.mkdtemp(prefix="tao-trace-registry-"))
    registry = Registry(root, _free_port(), auth=False).start()
    relay = PacedRelay(registry.host, scale.pull_rate)
    repositories = [f"trace/{task}" for task in PULLED_TASKS[: scale.images]]
    try:
        for index, repository in enumerate(repositories):
            variant = build_variant(TRACE_IMAGE, f"tao-bench/trace-{index}:1", root, size=scale.layer_bytes)
            reference, _ = registry.push(variant, f"{repository}:1")
            remove_local(reference, variant)
        images = _Images(relay.host, repositories)
        yield images
        images.remove()
    finally:
        relay.close()
        registry.stop()
        shutil.rmtree(root, ignore_errors=True)


def _manifest(path: Path, images: _Images) -> Path:
    repository, tag = TRACE_IMAGE.rsplit(":", 1)
    dockers: dict[str, Any] = {repository: {tag: {"docker_registry": "", "tasks": [LOCAL_TASK]}}}
    for task, pulled in zip(PULLED_TASKS, images.repositories, strict=False):
        dockers[pulled] = {"1": {"docker_registry": images.registry_host, "tasks": [task]}}
    path.write_text(json.dumps({"format_version": 2.0, "toolkit_version": "trace", "dockers": dockers}))
    return path


# -- through the daemon -------------------------------------------------------------------------------


def _through_daemon(trace: list[TraceJob], mode: str, scale: TraceScale, images: _Images) -> RunResult:
    images.remove()
    work = Path(tempfile.mkdtemp(prefix="tao-trace-"))
    policy = work / "policy.toml"
    policy.write_text(f'[fair_share]\nhalf_life = "{scale.half_life}"\n')
    port = _free_port()
    daemon = bench_daemon(
        "--gpus", ",".join(str(i) for i in range(INVENTORY)), "--gpu-mode", "env", "--gpu-line", mode,
        "--stop-timeout", str(STOP_TIMEOUT), "--port", str(port), "--policy", str(policy), "--max-running-jobs", "64",
        manifest=_manifest(work / "manifest.json", images),
    ).start()  # fmt: skip
    try:
        tokens = {user: daemon.token("--user", user, "--uid", str(uid), "--gid", str(uid)) for user, uid in USERS.items()}
        clients = {user: httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=60)
                   for user, token in tokens.items()}  # fmt: skip
        lock = threading.Lock()

        def submit(job: TraceJob) -> None:
            body: dict[str, Any] = {"task": job.task, "subtask": "sleep", "args": [str(job.seconds)], "gpus": str(job.gpus), "id": job.name}
            if job.limit is not None and mode != "fifo":
                body["time"] = f"{job.limit // 60}:{job.limit % 60:02d}"
            with lock:
                client = clients[job.user]
            response = client.post("/v1/jobs", json=body)
            if response.status_code != 201:
                raise RuntimeError(f"submitting {job.name}: {response.status_code} {response.text[:300]}")

        _replay(trace, submit)
        ran = _until_done(daemon, trace)
        for client in clients.values():
            client.close()
        return RunResult(mode, ran)
    finally:
        daemon.discard()
        shutil.rmtree(work, ignore_errors=True)


def _until_done(daemon: Any, trace: list[TraceJob], timeout: float = 3600) -> list[Ran]:
    """Every job of the trace once all have ended, with what the daemon recorded of them."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = daemon.request("GET", "/v1/jobs?limit=500")["jobs"]
        if len(jobs) == len(trace) and all(job["status"] in ("succeeded", "failed", "cancelled", "error") for job in jobs):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the trace did not finish within {timeout:.0f} s")
        time.sleep(0.5)
    by_name = {job.name: job for job in trace}
    return [
        _ran(by_name[job["id"].split(".", 1)[-1]], job, daemon.request("GET", f"/v1/jobs/{job['id']}/events")["events"]) for job in jobs
    ]


def _ran(job: TraceJob, shown: dict[str, Any], events: list[dict[str, Any]]) -> Ran:
    ended = _epoch(shown["finished_at"])
    grants = [event["time"] for event in events if event["type"] == "gpus"]
    pulls = [event["time"] for event in events if event["type"] == "pull"]
    held_pulling = 0.0
    if pulls and grants and ended is not None:
        pull_start, pull_end = min(pulls), max(pulls)
        held_pulling = sum(max(0.0, min(pull_end, ended) - max(pull_start, granted)) for granted in grants) * job.gpus
    return Ran(
        job,
        submitted=_epoch(shown["created_at"]) or 0.0,
        started=_epoch(shown["started_at"]),
        ended=ended,
        devices=len(shown["gpus"]),
        pulling_gpu_seconds=held_pulling,
        status=shown["status"],
    )


def _epoch(text: str | None) -> float | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None


def _replay(trace: list[TraceJob], submit: Callable[[TraceJob], None]) -> None:
    """Submit each job at its time after the start; a burst goes out from a few threads at once."""
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        submitted = []
        for job in trace:
            time.sleep(max(0.0, started + job.at - time.monotonic()))
            submitted.append(pool.submit(submit, job))
        for future in submitted:
            future.result()


# -- through Slurm ------------------------------------------------------------------------------------

_SCRIPT = """#!/bin/bash
# One trace job: its image pulled inside the allocation when missing, then the same container the daemon runs.
now() {{ date +%s.%N; }}
echo "alloc $(now)"
if ! docker image inspect {image} >/dev/null 2>&1; then
  echo "pull $(now)"
  docker pull -q {image} >/dev/null
  echo "pulled $(now)"
fi
echo "start $(now)"
docker run --rm --init --label org.tao-launcher.trace=1 -e NVIDIA_VISIBLE_DEVICES="${{CUDA_VISIBLE_DEVICES:-void}}" \\
  {image} {task} sleep {seconds} >/dev/null
echo "end $(now) $?"
"""


def _through_slurm(trace: list[TraceJob], images: _Images) -> RunResult:
    images.remove()
    root = Path(tempfile.mkdtemp(prefix="tao-slurm-"))  # short: munged's socket path must fit a sockaddr_un
    root.chmod(0o755)
    work = root / "trace"
    work.mkdir()
    # CPUs to spare (the machine has 2): only the GPUs may bound how many jobs run at once, as on the daemon.
    cluster = SlurmCluster(root / "cluster", gpus=INVENTORY, cpus=32).start()
    submitted: dict[str, float] = {}
    lock = threading.Lock()
    references = images.references()

    def submit(job: TraceJob) -> None:
        image = TRACE_IMAGE if job.image is None else references[job.image]
        script = work / f"{job.name}.sh"
        script.write_text(_SCRIPT.format(image=image, task=job.task, seconds=job.seconds))
        options = [f"--gres=gpu:{job.gpus}", f"--job-name=trace-{job.name}", f"--output={work / job.name}.out", "--cpus-per-task=1"]
        if job.limit is not None:
            options.append(f"--time={slurm_form(job.limit)}")
        with lock:
            submitted[job.name] = time.time()
        cluster.command("sbatch", "--parsable", *options, str(script))

    try:
        _replay(trace, submit)
        _until_slurm_idle(cluster)
        ran = [_slurm_ran(job, submitted[job.name], work / f"{job.name}.out") for job in trace]
    finally:
        cluster.stop()
        listed = subprocess.run(["docker", "ps", "-aq", "--filter", "label=org.tao-launcher.trace=1"], capture_output=True, text=True)
        if listed.stdout.split():
            subprocess.run(["docker", "rm", "-f", *listed.stdout.split()], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    return RunResult("slurm", ran, extra={"slurm_time_limits": "whole minutes (each limit here is 1 minute)"})


def _until_slurm_idle(cluster: SlurmCluster, timeout: float = 3600) -> None:
    deadline = time.monotonic() + timeout
    while set(cluster.command("squeue", "--noheader", "--states=all", "--format=%T").split()) - FINAL_STATES:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Slurm run did not finish within {timeout:.0f} s")
        time.sleep(0.5)


def _slurm_ran(job: TraceJob, submitted: float, output: Path) -> Ran:
    marks: dict[str, float] = {}
    for line in output.read_text().splitlines() if output.exists() else []:
        word, _, rest = line.partition(" ")
        if word in ("alloc", "pull", "pulled", "start", "end"):
            marks[word] = float(rest.split()[0])
    pulling = job.gpus * (marks["pulled"] - marks["pull"]) if "pull" in marks and "pulled" in marks else 0.0
    ended = marks.get("end")
    return Ran(
        job,
        submitted=submitted,
        started=marks.get("start"),
        ended=ended,
        devices=job.gpus,
        pulling_gpu_seconds=pulling,
        status="succeeded" if ended is not None else "unfinished",
    )


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

"""Hyperparameter sweeps on the seeded synthetic objective (figure 29).

The sample toolkit's stand-in training reports an mAP that is a known smooth function of
train.lr and train.batch (examples/sample-toolkit/task.sh: best 0.9 at lr 0.01, batch 32), each
epoch's rising towards the last's. The same seeded sweep (random sampler, seed 7: the same
parameters trial by trial, whatever the pruner) runs twice on a daemon with two fake GPUs, each
epoch a fixed time (the step's env, TAO_SAMPLE_EPOCH_SECONDS): with the median pruner and with none.

29a: GPU-seconds spent until the sweep's best first comes within TOLERANCE of the optimum: the
     trials' GPUs times how long each ran, up to the end of the first trial that got there
     (median pruner, beside `none`; the same trial gets there in both: the samples are seeded).
29b: the trial-epochs the whole sweep runs, median pruner beside `none` (the issue's check: >= 30% fewer).
29c: the daemon's overhead per trial: from the trial's job being recorded (the driver submitting
     it) to its container running (the job's `started_at`), for every trial of both sweeps; and,
     beside it, the gap from a trial's end to the next trial's job, which the driver adds.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from harness import IMAGE, ROOT, Daemon, Figure, bench_daemon, percentile

GROUPS = ("29",)  # what bench/run.py asks of this module
OPTIMUM = 0.9
TOLERANCE = 0.02
FAKE_GPUS = ("--gpus", "0,1", "--gpu-mode", "env", "--stop-timeout", "5")
# The sample image, under TAO_TEST_IMAGE's tag where that is set: checkouts sharing an engine keep their own.
SWEEP_IMAGE = os.environ.get("TAO_TEST_IMAGE", IMAGE)


@dataclass
class SweepScale:
    trials: int
    epochs: int
    epoch_seconds: float

    @classmethod
    def full(cls) -> SweepScale:
        return cls(trials=20, epochs=10, epoch_seconds=1.0)

    @classmethod
    def quick(cls) -> SweepScale:
        return cls(trials=6, epochs=3, epoch_seconds=0.2)


def sweep_file(scale: SweepScale, pruner: str) -> str:
    return f"""\
step:
  task: detectnet_v2
  subtask: train
  args: [-r, "${{trial.dir}}", "sample.epochs={scale.epochs}"]
  env: {{TAO_SAMPLE_EPOCH_SECONDS: "{scale.epoch_seconds}"}}
  gpus: 1
trial_dir: /workspace/sweep
params:
  lr: {{type: float, low: 1.0e-4, high: 1.0e-1, log: true, override: train.lr}}
  batch: {{type: int, low: 8, high: 64, step: 8, override: train.batch}}
objective: {{kpi: mAP, direction: maximize}}
trials: {scale.trials}
parallel: 2
sampler: {{name: random, seed: 7}}
pruner: {pruner}
"""


def run_group(group: str, scale: SweepScale) -> list[Figure]:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_sample_image.py"), SWEEP_IMAGE], check=True, stdout=subprocess.DEVNULL)
    manifest = _manifest()
    daemon = bench_daemon(*FAKE_GPUS, manifest=manifest).start()
    try:
        return sweeps(daemon, scale)
    finally:
        daemon.discard()
        shutil.rmtree(manifest.parent, ignore_errors=True)


def sweeps(daemon: Daemon, scale: SweepScale) -> list[Figure]:
    pruned = _run(daemon, scale, "median")
    unpruned = _run(daemon, scale, "none")
    reach_pruned, reach_unpruned = _to_tolerance(pruned), _to_tolerance(unpruned)
    overheads = [_overhead(job) for sweep in (pruned, unpruned) for job in sweep["jobs"].values()]
    handoffs = [gap for sweep in (pruned, unpruned) for gap in _handoffs(sweep)]
    reached = reach_pruned["gpu_seconds"] is not None and reach_unpruned["gpu_seconds"] is not None
    ratio = reach_pruned["gpu_seconds"] / reach_unpruned["gpu_seconds"] if reached else None
    inf = float("inf")
    return [
        Figure(
            "29a",
            f"GPU-seconds until a seeded {scale.trials}-trial sweep (2 at a time, {scale.epochs} epochs of "
            f"{scale.epoch_seconds:g} s) is within {TOLERANCE} of the optimum: median pruner",
            "GPU-s",
            [reach_pruned["gpu_seconds"] if reached else inf],
            "ratio <= 0.7",
            ratio is not None and ratio <= 0.7,
            baseline=[reach_unpruned["gpu_seconds"] if reached else inf],
            baseline_name="pruner none",
            extra={
                "median_pruner": {**reach_pruned, "trial_epochs": pruned["trial_epochs"], "gpu_seconds_all": pruned["gpu_seconds"]},
                "pruner_none": {**reach_unpruned, "trial_epochs": unpruned["trial_epochs"], "gpu_seconds_all": unpruned["gpu_seconds"]},
            },
        ),
        Figure(
            "29b",
            f"trial-epochs a seeded {scale.trials}-trial sweep runs: median pruner",
            "epochs",
            [pruned["trial_epochs"]],
            "ratio <= 0.7",
            pruned["trial_epochs"] <= 0.7 * unpruned["trial_epochs"],
            baseline=[unpruned["trial_epochs"]],
            baseline_name="pruner none",
        ),
        Figure(
            "29c",
            "daemon overhead per trial: its job recorded -> its container running",
            "s",
            overheads,
            "median < 1 s",
            statistics.median(overheads) < 1.0,
            extra={
                "p99": round(percentile(overheads, 0.99), 4),
                "trial_end_to_next_job_median_s": round(statistics.median(handoffs), 4) if handoffs else None,
                "trial_end_to_next_job_max_s": round(max(handoffs), 4) if handoffs else None,
            },
        ),
    ]


def _manifest() -> Path:
    """The sample manifest with its tasks in SWEEP_IMAGE."""
    manifest = json.loads((ROOT / "examples" / "sample-toolkit" / "manifest.json").read_text())
    (entry,) = [tags for tags in manifest["dockers"].values()]
    repository, tag = SWEEP_IMAGE.rsplit(":", 1)
    manifest["dockers"] = {repository: {tag: next(iter(entry.values()))}}
    path = Path(tempfile.mkdtemp(prefix="tao-bench-sweeps-")) / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


def _run(daemon: Daemon, scale: SweepScale, pruner: str) -> dict[str, Any]:
    """Run the sweep to its end; its `GET /v1/sweeps/ID` with each trial's job (`jobs`) and the epochs the trials ran."""
    root = daemon.root / f"sweep-{pruner}"
    workspace = root / "workspace"
    workspace.mkdir(parents=True)
    config = {"Mounts": [{"source": str(workspace), "destination": "/workspace"}]}
    body = {"file": sweep_file(scale, pruner), "source": f"bench-{pruner}.yaml", "launch_config": config}
    sweep_id = daemon.request("POST", "/v1/sweeps", body)["sweep"]["id"]
    deadline = time.monotonic() + 60 + 4 * scale.trials * scale.epochs * scale.epoch_seconds
    while (sweep := daemon.request("GET", f"/v1/sweeps/{sweep_id}"))["state"] != "completed":
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench sweep {sweep_id} ({pruner}) never completed: {json.dumps(sweep)[:2000]}")
        time.sleep(0.5)
    sweep["jobs"] = {trial["number"]: daemon.job(trial["job"]) for trial in sweep["trials"]}
    sweep["trial_epochs"] = sum(trial["epochs"] for trial in sweep["trials"])
    return dict(sweep)


def _to_tolerance(sweep: dict[str, Any]) -> dict[str, Any]:
    """The GPU-seconds the sweep's trials held until the first trial within TOLERANCE ended (None: none got there)."""
    close = [trial for trial in sweep["trials"] if trial["state"] == "complete" and abs(trial["value"] - OPTIMUM) <= TOLERANCE]
    if not close:
        return {"gpu_seconds": None, "trial": None}
    ends = {trial["number"]: _time(sweep["jobs"][trial["number"]]["finished_at"]) for trial in close}
    first = min(ends, key=lambda number: ends[number])
    until = ends[first]
    spent = 0.0
    for job in sweep["jobs"].values():
        started, finished = _time(job["started_at"]), _time(job["finished_at"])
        spent += len(job["gpus"]) * max(0.0, min(finished, until) - started)
    return {"gpu_seconds": round(spent, 2), "trial": first, "value": sweep["trials"][first]["value"]}


def _overhead(job: dict[str, Any]) -> float:
    return _time(job["started_at"]) - _time(job["created_at"])


def _handoffs(sweep: dict[str, Any]) -> list[float]:
    """For each trial after the first `parallel`: its job's creation less the end of the trial whose place it took."""
    jobs = sorted(sweep["jobs"].values(), key=lambda job: _time(job["created_at"]))
    ends = sorted(_time(job["finished_at"]) for job in jobs)
    return [_time(job["created_at"]) - end for job, end in zip(jobs[2:], ends, strict=False)]


def _time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()

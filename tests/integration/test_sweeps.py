"""Hyperparameter sweeps on the real engine: Optuna trials as jobs of the sample toolkit's stand-in training.

Given train.lr and train.batch, the training's mAP is a known smooth function of them (task.sh:
best 0.9 at lr 0.01, batch 32), rising epoch by epoch towards its final value. Each epoch waits at
a gate in the trial's own dir (sample.gates=${trial.dir}); a relay opens a trial's next gate only
once the daemon has reported its last epoch to the study (the trial's `epochs`), so the pruner
sees every epoch before the next one runs, however fast or slow the machine is.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tao_server.testing.daemon import Daemon
from tests.integration.conftest import containers_gone, until, write_mounts

pytestmark = pytest.mark.integration
OPTIMUM = 0.9  # the objective's best value (task.sh)
TOLERANCE = 0.02  # a sweep's best is this close to it
EPOCHS = 10
FAKE_GPUS = ("--gpus", "0,1", "--gpu-mode", "env")


PARAMS = """\
  lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true, override: train.lr}
  batch: {type: int, low: 8, high: 64, step: 8, override: train.batch}
"""


def sweep_yaml(
    pruner: str,
    trials: int = 20,
    parallel: int = 2,
    epochs: int = EPOCHS,
    kpi: str = "mAP",
    gpus: int = 1,
    params: str = PARAMS,
    extra: str = "sampler: {name: random, seed: 7}\n",
) -> str:
    """A sweep of the stand-in training; each epoch waits at its gate in the trial's dir (relay() opens them)."""
    return f"""\
step:
  task: detectnet_v2
  subtask: train
  args: [-r, "${{trial.dir}}", "sample.gates=${{trial.dir}}", "sample.epochs={epochs}"]
  gpus: {gpus}
trial_dir: /workspace/sweep
params:
{params}objective: {{kpi: {kpi}, direction: maximize}}
trials: {trials}
parallel: {parallel}
pruner: {pruner}
{extra}"""


def objective(lr: float, batch: int) -> float:
    """The stand-in training's last-epoch mAP for these parameters (task.sh): best 0.9 at lr 0.01, batch 32."""
    ratio = lr / 0.01
    g = (ratio - 1) / (ratio + 1)
    return 0.9 - 0.3 * g * g - 0.5 * ((batch - 32) / 56) ** 2


def workspace_mounts(tmp_path: Path) -> tuple[Path, Path]:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    return workspace, write_mounts(tmp_path / "mounts.json", {"Mounts": [{"source": str(workspace), "destination": "/workspace"}]})


@contextmanager
def relay(daemon: Daemon, sweep_id: str, workspace: Path) -> Iterator[threading.Event]:
    """Open each running trial's next epoch gate once the daemon has reported the last; set the event to hold them all."""
    done, held = threading.Event(), threading.Event()

    def run() -> None:
        while not done.wait(0.05):
            if held.is_set():
                continue
            try:
                sweep = daemon.request("GET", f"/v1/sweeps/{sweep_id}")
            except (RuntimeError, OSError):  # the daemon restarting
                continue
            for trial in sweep["trials"]:
                if trial["state"] == "running" and trial["job"]:
                    gate = workspace / "sweep" / str(trial["number"]) / f"epoch-{trial['epochs'] + 1}"
                    gate.parent.mkdir(parents=True, exist_ok=True)
                    gate.touch()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield held
    finally:
        done.set()
        thread.join()


def run_sweep(daemon: Daemon, tmp_path: Path, name: str, text: str) -> tuple[dict[str, Any], str]:
    """Start the sweep detached, relay its gates until it completes; (its `tao sweep show --json`, what `tao sweep run` printed)."""
    root = tmp_path / name
    root.mkdir()
    workspace, mounts = workspace_mounts(root)
    (root / "sweep.yaml").write_text(text)
    started = daemon.tao("--mounts", str(mounts), "sweep", "run", "-d", str(root / "sweep.yaml"))
    assert started.returncode == 0, started.stderr
    sweep_id = started.stdout.decode().strip()
    with relay(daemon, sweep_id, workspace):
        until(lambda: daemon.request("GET", f"/v1/sweeps/{sweep_id}")["state"] == "completed", f"sweep {sweep_id} completes", timeout=600)
    shown = daemon.tao("sweep", "show", "--json", sweep_id)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout), sweep_id


def trial_epochs(sweep: dict[str, Any]) -> int:
    return sum(trial["epochs"] for trial in sweep["trials"])


def test_a_seeded_sweep_finds_the_optimum_and_the_median_pruner_spends_far_fewer_epochs(
    new_daemon: Any, tmp_path: Path, docker_client: Any
) -> None:
    daemon = new_daemon(*FAKE_GPUS, "--stop-timeout", "5").start()
    unpruned, _ = run_sweep(daemon, tmp_path, "none", sweep_yaml("none"))
    pruned, _ = run_sweep(daemon, tmp_path, "median", sweep_yaml("median"))

    for sweep in (unpruned, pruned):
        assert len(sweep["trials"]) == 20
        assert abs(sweep["best"]["value"] - OPTIMUM) <= TOLERANCE, sweep["best"]
        assert sweep["best"]["command"].startswith("tao detectnet_v2 train -r /workspace/sweep/")
    assert abs(pruned["best"]["value"] - unpruned["best"]["value"]) <= TOLERANCE
    assert {trial["state"] for trial in unpruned["trials"]} == {"complete"}
    assert trial_epochs(unpruned) == 20 * EPOCHS
    assert trial_epochs(pruned) <= 0.7 * trial_epochs(unpruned), (trial_epochs(pruned), trial_epochs(unpruned))

    pruned_trials = [trial for trial in pruned["trials"] if trial["state"] == "pruned"]
    assert pruned_trials
    jobs = {trial["number"]: daemon.job(trial["job"]) for trial in pruned["trials"]}
    for trial in pruned_trials:
        job = jobs[trial["number"]]
        assert job["status"] == "cancelled" and job["sweep_id"] == pruned["id"] and job["trial"] == trial["number"]
        assert containers_gone(docker_client, job["id"])
        # its GPU went on to a later trial, started once it had ended
        later = [j for n, j in jobs.items() if n > trial["number"] and j["gpus"] == job["gpus"] and j["started_at"] >= job["finished_at"]]
        assert later, f"trial {trial['number']}'s GPU {job['gpus']} was never handed on"


def test_a_daemon_restart_in_the_middle_of_a_sweep_loses_no_trial_and_runs_none_twice(new_daemon: Any, tmp_path: Path) -> None:
    daemon = new_daemon(*FAKE_GPUS).start()
    workspace, mounts = workspace_mounts(tmp_path)
    (tmp_path / "sweep.yaml").write_text(sweep_yaml("median", trials=6, parallel=2, epochs=3))
    started = daemon.tao("--mounts", str(mounts), "sweep", "run", "-d", str(tmp_path / "sweep.yaml"))
    assert started.returncode == 0, started.stderr
    sweep_id = started.stdout.decode().strip()

    def show() -> dict[str, Any]:
        answer: dict[str, Any] = daemon.request("GET", f"/v1/sweeps/{sweep_id}")
        return answer

    with relay(daemon, sweep_id, workspace) as held:
        until(lambda: sum(trial["state"] == "complete" for trial in show()["trials"]) >= 2, "two trials complete")
        held.set()  # the running trials wait at their next gate while the daemon is away
        until(lambda: sum(trial["state"] == "running" and trial["job"] is not None for trial in show()["trials"]) == 2, "two trials run")
        before = show()
        daemon.stop()
        daemon.start()
        held.clear()
        until(lambda: show()["state"] == "completed", "the sweep completes after the restart", timeout=300)
    after = show()
    numbers = [trial["number"] for trial in after["trials"]]
    assert numbers == list(range(6))
    assert {trial["state"] for trial in after["trials"]} <= {"complete", "pruned"}
    for trial in before["trials"]:
        if trial["job"] is not None:
            assert after["trials"][trial["number"]]["job"] == trial["job"]  # the same job, followed on
    listed = json.loads(daemon.tao("list", "--all", "--json").stdout)
    jobs = [job for job in listed if job.get("sweep_id") == sweep_id]
    assert sorted(job["trial"] for job in jobs) == list(range(6))  # one job a trial: none lost, none run twice


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (("type: int", "type: integer"), "params.batch.type"),
        (("high: 64", "high: 8"), "params.batch.low"),
        (("objective: {kpi: mAP, direction: maximize}\n", ""), "objective"),
    ],
)
def test_a_bad_sweep_file_exits_125_naming_the_key_and_submits_nothing(
    daemon: Daemon, tmp_path: Path, change: tuple[str, str], key: str
) -> None:
    _, mounts = workspace_mounts(tmp_path)
    path = tmp_path / "sweep.yaml"
    path.write_text(sweep_yaml("median").replace(*change))
    before = len(json.loads(daemon.tao("list", "--all", "--json").stdout))
    result = daemon.tao("--mounts", str(mounts), "sweep", "run", str(path))
    assert result.returncode == 125
    message = result.stderr.decode()
    assert re.search(rf"{re.escape(str(path))}:\d+:\d+: {re.escape(key)}: ", message), message  # file, line, column, key
    assert len(json.loads(daemon.tao("list", "--all", "--json").stdout)) == before
    assert not json.loads(daemon.tao("sweep", "list", "--json").stdout)


def test_a_kpi_the_task_never_writes_fails_the_trial_naming_what_it_wrote(daemon: Daemon, tmp_path: Path) -> None:
    workspace, mounts = workspace_mounts(tmp_path)
    path = tmp_path / "sweep.yaml"
    path.write_text(sweep_yaml("none", trials=1, parallel=1, epochs=1, kpi="accuracy", gpus=0))
    started = daemon.tao("--mounts", str(mounts), "sweep", "run", "-d", str(path))
    assert started.returncode == 0, started.stderr
    sweep_id = started.stdout.decode().strip()
    with relay(daemon, sweep_id, workspace):
        attached = daemon.tao("sweep", "show", sweep_id)
        assert attached.returncode == 0
        until(lambda: daemon.request("GET", f"/v1/sweeps/{sweep_id}")["state"] == "completed", "the sweep completes")
    (trial,) = daemon.request("GET", f"/v1/sweeps/{sweep_id}")["trials"]
    assert trial["state"] == "fail"
    assert "'accuracy'" in trial["error"] and "mAP" in trial["error"] and "loss" in trial["error"]


def test_tao_sweep_run_attached_prints_each_trial_and_the_best(daemon: Daemon, tmp_path: Path) -> None:
    workspace, mounts = workspace_mounts(tmp_path)
    path = tmp_path / "sweep.yaml"
    path.write_text(sweep_yaml("none", trials=2, parallel=2, epochs=1, gpus=0))
    process = daemon.popen_tao("--mounts", str(mounts), "sweep", "run", str(path))
    assert process.stdout is not None
    first = process.stdout.readline().decode()
    sweep_id = first.split()[1].rstrip(":")
    with relay(daemon, sweep_id, workspace):
        out, _ = process.communicate(timeout=300)
    text = first + out.decode()
    assert process.returncode == 0, text
    assert text.count(" complete ") == 2 and "lr=" in text
    assert "best: trial " in text and "tao detectnet_v2 train -r /workspace/sweep/" in text

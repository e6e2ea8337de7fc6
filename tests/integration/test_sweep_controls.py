"""A sweep's controls on the real engine: its spec template, its GPU-hours budget, `tao sweep stop`,
and the other pruner and sampler (Hyperband, grid), each on the sample toolkit's stand-in training.

The trials' epochs wait at gates that the test opens (test_sweeps.relay): nothing here depends on
how fast the machine is.
"""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tao_server.testing.daemon import Daemon
from tests.integration.conftest import containers_gone, tao_as, until
from tests.integration.test_sweeps import FAKE_GPUS, objective, relay, run_sweep, sweep_yaml, workspace_mounts

pytestmark = pytest.mark.integration


def sweep_of(daemon: Daemon, sweep_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = daemon.request("GET", f"/v1/sweeps/{sweep_id}")
    return answer


def test_the_spec_template_is_filled_and_written_to_each_trial_dir_as_its_owner(
    shared_daemons: Any, unprivileged_user: tuple[str, int, int]
) -> None:
    daemon = shared_daemons()
    _, uid, gid = unprivileged_user
    workspace = daemon.home / "workspace"
    workspace.mkdir()
    os.chown(workspace, uid, gid)
    template = workspace / "train.txt.in"
    template.write_text("batch_size: ${params.bs}\nresults: ${trial.dir}\n")
    os.chown(template, uid, gid)
    template.chmod(0o600)  # theirs alone: the daemon reads it as them
    mounts = daemon.home / "mounts.json"
    mounts.write_text(json.dumps({"Mounts": [{"source": str(workspace), "destination": "/workspace"}]}))
    params = """\
  lr: {type: float, low: 1.0e-3, high: 1.0e-1, log: true, override: train.lr}
  batch: {type: int, low: 8, high: 64, step: 8, override: train.batch, template: bs}
"""
    text = sweep_yaml("none", trials=2, parallel=1, epochs=1, gpus=0, params=params)
    text = text.replace("-r,", '-e, "${trial.dir}/spec", -r,')  # the task reads its spec: it must be there when it starts
    text += "spec_template: /workspace/train.txt.in\n"
    (daemon.home / "sweep.yaml").write_text(text)
    started = tao_as(daemon, unprivileged_user, "--mounts", str(mounts), "sweep", "run", "-d", str(daemon.home / "sweep.yaml"))
    assert started.returncode == 0, started.stderr
    sweep_id = started.stdout.decode().strip()
    with relay(daemon, sweep_id, workspace):
        until(lambda: sweep_of(daemon, sweep_id)["state"] == "completed", "the sweep completes")
    trials = sweep_of(daemon, sweep_id)["trials"]
    assert [trial["state"] for trial in trials] == ["complete", "complete"], [trial["error"] for trial in trials]
    for trial in trials:
        spec = workspace / "sweep" / str(trial["number"]) / "spec"
        assert spec.read_text() == f"batch_size: {trial['params']['batch']}\nresults: /workspace/sweep/{trial['number']}\n"
        assert (spec.stat().st_uid, spec.stat().st_gid) == (uid, gid)  # the sweep owner's file, not root's
        assert spec.parent.stat().st_uid == uid


def test_a_spec_template_its_owner_cannot_read_fails_the_trial_and_is_never_copied(
    shared_daemons: Any, unprivileged_user: tuple[str, int, int]
) -> None:
    daemon = shared_daemons()
    _, uid, gid = unprivileged_user
    workspace = daemon.home / "workspace"
    workspace.mkdir()
    os.chown(workspace, uid, gid)
    secret = workspace / "root-only.in"
    secret.write_text("secret: ${params.bs}\n")
    secret.chmod(0o600)  # root's: the daemon could read it, its owner cannot
    mounts = daemon.home / "mounts.json"
    mounts.write_text(json.dumps({"Mounts": [{"source": str(workspace), "destination": "/workspace"}]}))
    params = "  batch: {type: int, low: 8, high: 64, step: 8, override: train.batch, template: bs}\n"
    text = sweep_yaml("none", trials=1, parallel=1, epochs=1, gpus=0, params=params) + "spec_template: /workspace/root-only.in\n"
    (daemon.home / "sweep.yaml").write_text(text)
    started = tao_as(daemon, unprivileged_user, "--mounts", str(mounts), "sweep", "run", "-d", str(daemon.home / "sweep.yaml"))
    assert started.returncode == 0, started.stderr
    sweep_id = started.stdout.decode().strip()
    until(lambda: sweep_of(daemon, sweep_id)["state"] == "completed", "the sweep completes")
    (trial,) = sweep_of(daemon, sweep_id)["trials"]
    assert trial["state"] == "fail" and "Permission denied" in trial["error"], trial
    assert trial["job"] is None and not (workspace / "sweep" / "0" / "spec").exists()


def test_no_trial_starts_once_the_gpu_hours_budget_is_spent(new_daemon: Any, tmp_path: Path) -> None:
    daemon = new_daemon(*FAKE_GPUS).start()
    workspace, mounts = workspace_mounts(tmp_path)
    budget_hours = 0.0005  # 1.8 GPU-seconds: the two first trials spend it while the test holds them
    (tmp_path / "sweep.yaml").write_text(sweep_yaml("none", trials=6, parallel=2, epochs=2) + f"gpu_hours: {budget_hours}\n")
    process = daemon.popen_tao("--mounts", str(mounts), "sweep", "run", str(tmp_path / "sweep.yaml"))
    assert process.stdout is not None
    sweep_id = process.stdout.readline().decode().split()[1].rstrip(":")
    until(lambda: sum(trial["state"] == "running" for trial in sweep_of(daemon, sweep_id)["trials"]) == 2, "two trials run")
    until(lambda: sweep_of(daemon, sweep_id)["gpu_seconds"] >= budget_hours * 3600, "the budget is spent", timeout=120)
    with relay(daemon, sweep_id, workspace):
        out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    sweep = sweep_of(daemon, sweep_id)
    assert (sweep["state"], sweep["message"]) == ("completed", f"the GPU-hours budget of {budget_hours:g} is spent")
    assert [trial["state"] for trial in sweep["trials"]] == ["complete", "complete"]  # trials 2-5 never asked for
    assert f"(the GPU-hours budget of {budget_hours:g} is spent)" in out.decode()
    assert len([job for job in json.loads(daemon.tao("list", "--all", "--json").stdout) if job.get("sweep_id") == sweep_id]) == 2


def test_tao_sweep_stop_stops_the_running_trials_jobs_and_the_attached_run_exits_143(
    new_daemon: Any, tmp_path: Path, docker_client: Any
) -> None:
    daemon = new_daemon(*FAKE_GPUS, "--stop-timeout", "5").start()
    _, mounts = workspace_mounts(tmp_path)
    (tmp_path / "sweep.yaml").write_text(sweep_yaml("none", trials=6, parallel=2, epochs=3))
    process = daemon.popen_tao("--mounts", str(mounts), "sweep", "run", str(tmp_path / "sweep.yaml"))
    assert process.stdout is not None
    sweep_id = process.stdout.readline().decode().split()[1].rstrip(":")

    def running_jobs() -> list[str]:
        trials = sweep_of(daemon, sweep_id)["trials"]
        return [t["job"] for t in trials if t["job"] and daemon.job(t["job"])["status"] == "running"]

    until(lambda: len(running_jobs()) == 2, "two trials' jobs run")  # no gate opens: they wait at epoch 1
    jobs = running_jobs()
    stopped = daemon.tao("sweep", "stop", sweep_id)
    assert (stopped.returncode, stopped.stdout.decode()) == (0, f"sweep {sweep_id} stopped\n"), stopped.stderr
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 143, out
    assert f"sweep {sweep_id} stopped: 2 fail" in out.decode()
    sweep = json.loads(daemon.tao("sweep", "show", "--json", sweep_id).stdout)
    assert sweep["state"] == "stopped" and len(sweep["trials"]) == 2
    assert all(t["state"] == "fail" and t["error"] == "stopped with the sweep (tao sweep stop)" for t in sweep["trials"])
    for job_id in jobs:
        assert daemon.wait_for_status(job_id, ("cancelled",), timeout=60)["status"] == "cancelled"
        until(partial(containers_gone, docker_client, job_id), f"{job_id}'s container is gone")
    again = daemon.tao("sweep", "stop", sweep_id)  # an ended sweep: nothing to do, said as it is
    assert (again.returncode, again.stdout.decode()) == (0, f"sweep {sweep_id} stopped\n")
    missing = daemon.tao("sweep", "stop", "nosuchsweep")
    assert missing.returncode != 0 and b"nosuchsweep" in missing.stderr, missing.stderr


def test_the_hyperband_pruner_stops_trials_early_and_the_sweep_completes(new_daemon: Any, tmp_path: Path, docker_client: Any) -> None:
    daemon = new_daemon(*FAKE_GPUS, "--stop-timeout", "5").start()
    # One at a time: each trial's epochs are reported in the same order every run, so the pruner decides alike.
    sweep, _ = run_sweep(daemon, tmp_path, "hyperband", sweep_yaml("hyperband", trials=8, parallel=1, epochs=4))
    states = [trial["state"] for trial in sweep["trials"]]
    assert len(states) == 8 and set(states) <= {"complete", "pruned"}, states
    assert "pruned" in states and "complete" in states, states
    for trial in sweep["trials"]:
        job = daemon.job(trial["job"])
        if trial["state"] == "pruned":
            assert trial["epochs"] < 4 and job["status"] == "cancelled" and containers_gone(docker_client, job["id"])
        else:
            assert trial["epochs"] == 4 and trial["value"] == pytest.approx(objective(**trial["params"]), abs=1e-5)
    assert sweep["best"]["value"] == max(t["value"] for t in sweep["trials"] if t["state"] == "complete")


def test_the_grid_sampler_tries_each_point_of_the_grid_once(new_daemon: Any, tmp_path: Path) -> None:
    daemon = new_daemon(*FAKE_GPUS).start()
    params = """\
  lr: {type: float, low: 0.005, high: 0.015, step: 0.005, override: train.lr}
  batch: {type: int, low: 24, high: 40, step: 8, override: train.batch}
"""
    text = sweep_yaml("none", trials=9, parallel=2, epochs=1, params=params, extra="sampler: {name: grid, seed: 1}\n")
    sweep, _ = run_sweep(daemon, tmp_path, "grid", text)
    tried = sorted((round(t["params"]["lr"], 6), t["params"]["batch"]) for t in sweep["trials"])
    assert tried == [(lr, batch) for lr in (0.005, 0.01, 0.015) for batch in (24, 32, 40)]
    assert {t["state"] for t in sweep["trials"]} == {"complete"}
    assert (round(sweep["best"]["params"]["lr"], 6), sweep["best"]["params"]["batch"]) == (0.01, 32)
    assert sweep["best"]["value"] == pytest.approx(0.9, abs=1e-5)  # the objective's optimum, on the grid

"""Pipelines on the real single-node cluster, with Slurm holding the dependencies (--dependency=afterok:ID).

Each step is handed to Slurm as soon as the step it follows is submitted there, so the cluster
starts it the moment that one ends; a step whose dependency failed is ended by Slurm
(--kill-on-invalid-dep=yes) and reads `cancelled`, its message naming that step, as on Docker.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from tao_server.testing.daemon import Daemon
from tao_server.testing.slurm import SlurmCluster
from tests.integration.conftest import Gates, job_id_of
from tests.slurm.conftest import containers_of, wait_until

PIPELINE = """\
steps:
  first:
    task: detectnet_v2
    subtask: run
    args: [sh, -c, "{first}; echo first"]
  second:
    after: [first]
    task: detectnet_v2
    subtask: run
    args: [sh, -c, "echo second; exit {second_code}"]
  third:
    after: [second]
    task: detectnet_v2
    subtask: run
    args: [sh, -c, "echo third"]
"""


def started_pipeline(daemon: Daemon, gates: Gates, tmp_path: Path, second_code: int) -> dict[str, dict]:  # type: ignore[type-arg]
    """A three-step pipeline whose first step holds until the test opens its gate; its steps by name, once all are in Slurm."""
    path = tmp_path / "three.yaml"
    path.write_text(PIPELINE.format(first=gates.wait("first"), second_code=second_code))
    submitted = daemon.tao("--mounts", str(gates.mounts), "pipeline", "run", "-d", str(path))
    assert submitted.returncode == 0, submitted.stderr
    pipeline_id = submitted.stdout.decode().split()[-1]
    steps: dict[str, dict] = {}  # type: ignore[type-arg]

    def all_in_slurm() -> bool:
        shown = daemon.request("GET", f"/v1/pipelines/{pipeline_id}")
        steps.update({step["name"]: daemon.job(step["job_id"]) for step in shown["steps"]})
        return all(step["container_id"] for step in steps.values())

    wait_until(all_in_slurm, "every step is submitted to Slurm while the first runs")
    return steps


def dependency_of(slurm: SlurmCluster, slurm_id: str) -> str:
    shown = slurm.command("scontrol", "show", "job", slurm_id)
    return next(word for word in shown.split() if word.startswith("Dependency="))


def test_a_three_step_pipeline_runs_with_slurm_holding_its_dependencies(on_slurm: Daemon, slurm: SlurmCluster, tmp_path: Path) -> None:
    gates = Gates(on_slurm.root / "gates")
    gates.root.chmod(0o755)
    steps = started_pipeline(on_slurm, gates, tmp_path, second_code=0)
    first, second, third = (steps[name]["container_id"] for name in ("first", "second", "third"))
    assert dependency_of(slurm, second) == f"Dependency=afterok:{first}(unfulfilled)"
    assert dependency_of(slurm, third) == f"Dependency=afterok:{second}(unfulfilled)"
    assert on_slurm.job(steps["third"]["id"])["condition"] == f"waiting for {steps['second']['id']}"
    gates.open("first")
    for name in ("first", "second", "third"):
        assert (
            on_slurm.wait_for_status(steps[name]["id"], ("succeeded", "failed", "cancelled", "error"), timeout=120)["status"] == "succeeded"
        )
    assert on_slurm.tao("logs", steps["third"]["id"]).stdout == b"third\n"


def test_a_failing_middle_step_collapses_the_last_one_in_slurm(on_slurm: Daemon, slurm: SlurmCluster, tmp_path: Path) -> None:
    gates = Gates(on_slurm.root / "gates")
    gates.root.chmod(0o755)
    steps = started_pipeline(on_slurm, gates, tmp_path, second_code=3)
    assert dependency_of(slurm, steps["third"]["container_id"]) == f"Dependency=afterok:{steps['second']['container_id']}(unfulfilled)"
    gates.open("first")
    ended = {
        name: on_slurm.wait_for_status(steps[name]["id"], ("succeeded", "failed", "cancelled", "error"), timeout=120) for name in steps
    }
    assert [ended[name]["status"] for name in ("first", "second", "third")] == ["succeeded", "failed", "cancelled"]
    third = ended["third"]
    assert third["error"] == f"not started: its dependency {steps['second']['id']} (step second) failed (exit code 3)"
    assert third["started_at"] is None and containers_of(third["id"]) == []


def test_a_job_waiting_for_gpus_shows_when_slurm_plans_to_start_it(on_slurm: Daemon, slurm: SlurmCluster) -> None:
    gates = Gates(on_slurm.root / "gates")
    gates.root.chmod(0o755)
    holding = on_slurm.tao("--mounts", str(gates.mounts), "--gpus", "4", "--time", "10", "-d", "unet", "run", "sh", "-c", gates.wait("go"))
    first = job_id_of(holding)
    on_slurm.wait_for_status(first, ("running",))
    second = job_id_of(on_slurm.tao("--gpus", "4", "-d", "unet", "run", "true"))
    expected: list[str] = []

    def planned() -> bool:
        job = on_slurm.job(second)
        expected[:] = [job["expected_start"]] if job["expected_start"] else []
        return bool(expected)

    wait_until(planned, "Slurm's backfill plans the second job's start")
    started = datetime.fromisoformat(on_slurm.job(first)["started_at"])
    planned_in = (datetime.fromisoformat(expected[0]) - started).total_seconds()
    assert 9 * 60 <= planned_in <= 11 * 60, expected  # at the first job's time limit
    assert "queued (~" in on_slurm.tao("list").stdout.decode()
    gates.open("go")
    assert on_slurm.wait_for_status(second, ("succeeded",), timeout=120)["expected_start"] is None

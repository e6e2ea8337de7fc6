"""Dependencies, pipelines and retries end to end: the real `tao`, a real daemon, the Docker engine, the sample image."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tao_server.testing.daemon import Daemon
from tests.conftest import ROOT
from tests.integration.conftest import Gates, job_containers, job_id_of, until, write_mounts

pytestmark = pytest.mark.integration

EXAMPLE = ROOT / "examples" / "pipelines" / "detectnet_v2.yaml"


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def gated(daemon: Daemon, gates: Gates, name: str, code: int = 0) -> str:
    """A job that runs until the test opens gate `name`, then exits `code`."""
    result = daemon.tao("-d", "--mounts", str(gates.mounts), "detectnet_v2", "run", "sh", "-c", f"{gates.wait(name)}; exit {code}")
    assert result.returncode == 0, result.stderr
    return job_id_of(result)


def test_a_job_after_a_running_job_starts_within_a_second_of_its_end(daemon: Daemon, gates: Gates) -> None:
    first = gated(daemon, gates, "after-first")
    daemon.wait_for_status(first, ("running",))
    second = job_id_of(daemon.tao("-d", "--after", first, "detectnet_v2", "exit", "0"))
    waiting = daemon.job(second)
    assert (waiting["status"], waiting["condition"], waiting["after"]) == ("queued", f"waiting for {first}", [first])
    listed = daemon.tao("list").stdout.decode()
    assert f"queued (waiting for {first})" in listed
    gates.open("after-first")
    ended = daemon.wait_for_status(first, ("succeeded",))
    started = daemon.wait_for_status(second, ("succeeded",))
    assert (when(started["started_at"]) - when(ended["finished_at"])).total_seconds() < 1.0


def test_a_failed_dependency_collapses_the_chain_with_no_container(daemon: Daemon, gates: Gates, docker_client: Any) -> None:
    first = gated(daemon, gates, "chain-first", code=3)
    second = job_id_of(daemon.tao("-d", "--after", first, "detectnet_v2", "exit", "0"))
    third = job_id_of(daemon.tao("-d", "--after", second, "detectnet_v2", "exit", "0"))
    gates.open("chain-first")
    assert daemon.wait_for_status(first, ("failed",))["exit_code"] == 3
    two = daemon.wait_for_status(second, ("cancelled",))
    three = daemon.wait_for_status(third, ("cancelled",))
    assert two["error"] == f"not started: its dependency {first} failed (exit code 3)"
    assert three["error"] == f"not started: its dependency {second} was cancelled"
    assert (two["container_id"], three["container_id"]) == (None, None)
    assert job_containers(docker_client, second) == [] and job_containers(docker_client, third) == []
    assert [event["type"] for event in daemon.request("GET", f"/v1/jobs/{second}/events")["events"]] == ["dependency"]


def test_an_unknown_dependency_is_refused_and_nothing_is_submitted(daemon: Daemon) -> None:
    before = daemon.tao("list", "--all", "--json").stdout
    refused = daemon.tao("--after", "nosuchjob", "detectnet_v2", "exit", "0")
    assert refused.returncode == 125
    assert b"--after nosuchjob: no job 'nosuchjob' of yours to wait for" in refused.stderr, refused.stderr
    assert daemon.tao("list", "--all", "--json").stdout == before


def test_a_restart_in_the_middle_keeps_every_edge(new_daemon, gates: Gates) -> None:  # type: ignore[no-untyped-def]
    daemon = new_daemon().start()
    first = gated(daemon, gates, "restart-first")
    second = job_id_of(daemon.tao("-d", "--after", first, "detectnet_v2", "exit", "0"))
    third = job_id_of(daemon.tao("-d", "--after-any", second, "detectnet_v2", "exit", "0"))
    daemon.stop()
    daemon.start()
    assert daemon.job(third)["condition"] == f"waiting for {second}"
    gates.open("restart-first")
    assert daemon.wait_for_status(third, ("succeeded", "cancelled"))["status"] == "succeeded"
    assert daemon.job(second)["status"] == "succeeded"


def experiments(tmp_path: Path) -> tuple[Path, Path]:
    """A launcher config mounting a results dir and the example's specs, as the example's header asks; (config, results)."""
    results = tmp_path / "experiments"
    results.mkdir()
    specs = {"source": str(ROOT / "examples" / "pipelines" / "specs"), "destination": "/workspace/specs", "read_only": True}
    config = {"Mounts": [{"source": str(results), "destination": "/workspace/tao-experiments"}, specs]}
    return write_mounts(tmp_path / "mounts.json", config), results


def test_the_example_pipeline_runs_end_to_end(daemon: Daemon, tmp_path: Path) -> None:
    mounts, results = experiments(tmp_path)
    result = daemon.tao("--mounts", str(mounts), "pipeline", "run", str(EXAMPLE), timeout=300)
    assert result.returncode == 0, result.stderr
    output = result.stdout.decode()
    headers = [line.split()[2] for line in output.splitlines() if line.startswith("==> step ")]
    assert headers == ["dataset_convert", "train", "evaluate", "prune", "retrain", "evaluate_retrained", "export"]
    assert "starting from /workspace/tao-experiments/detectnet_v2/pruned/model.tlt" in output
    exported = results / "detectnet_v2" / "export" / "model.onnx"
    assert exported.read_text() == "onnx of weights of detectnet_v2 from pruned (0.1) weights of detectnet_v2\n"
    pipeline_id = json.loads(daemon.tao("pipeline", "list", "--json").stdout)[0]["id"]
    shown = json.loads(daemon.tao("pipeline", "show", pipeline_id, "--json").stdout)
    assert (shown["status"], shown["exit_code"]) == ("succeeded", 0)
    assert [step["after"] for step in shown["steps"]][1:] == [
        ["dataset_convert"],
        ["train"],
        ["evaluate"],
        ["prune"],
        ["retrain"],
        ["evaluate_retrained"],
    ]
    job = daemon.job(shown["steps"][-1]["job_id"])
    assert (job["pipeline_id"], job["step"]) == (pipeline_id, "export")
    assert daemon.tao("logs", job["id"]).stdout.decode().startswith("exported /workspace/tao-experiments/detectnet_v2/retrained/model.tlt")


def test_a_pipeline_whose_prune_fails_exits_with_its_code_and_never_exports(daemon: Daemon, tmp_path: Path) -> None:
    mounts, _ = experiments(tmp_path)
    broken = tmp_path / "broken.yaml"
    broken.write_text(EXAMPLE.read_text().replace('-m, "${vars.out}/unpruned/model.tlt", -o', '-m, "${vars.out}/nothing.tlt", -o'))
    result = daemon.tao("--mounts", str(mounts), "pipeline", "run", str(broken), timeout=300)
    assert result.returncode == 3, result.stderr
    assert b"cannot read /workspace/tao-experiments/detectnet_v2/nothing.tlt" in result.stdout  # the task's own words
    assert b"step prune failed (exit code 3)" in result.stderr
    pipeline_id = json.loads(daemon.tao("pipeline", "list", "--json").stdout)[0]["id"]
    steps = {step["name"]: step for step in json.loads(daemon.tao("pipeline", "show", pipeline_id, "--json").stdout)["steps"]}
    assert (steps["prune"]["status"], steps["prune"]["exit_code"]) == ("failed", 3)
    assert [steps[name]["status"] for name in ("retrain", "evaluate_retrained", "export")] == ["cancelled"] * 3
    assert steps["export"]["started_at"] is None and daemon.job(steps["export"]["job_id"])["container_id"] is None


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (("  prune:\n    after: [evaluate]", "  prune:\n    after: [export]"), b"steps.prune.after: a cycle: prune -> export -> evaluate_retrained -> retrain -> prune"),
        (("after: [evaluate]", "after: [evaluation]"), b"steps.prune.after: no step 'evaluation' in this file"),
        (("    subtask: prune\n", "    subtask: prune\n    gpu: 1\n"), b"steps.prune.gpu: unknown key"),
    ],
)  # fmt: skip
def test_a_file_that_cannot_run_exits_125_naming_it_and_submits_nothing(
    daemon: Daemon, tmp_path: Path, change: tuple[str, str], named: bytes
) -> None:
    bad = tmp_path / "bad.yaml"
    text = EXAMPLE.read_text()
    assert change[0] in text
    bad.write_text(text.replace(change[0], change[1]))
    before = daemon.tao("list", "--all", "--json").stdout
    result = daemon.tao("pipeline", "run", str(bad))
    assert result.returncode == 125
    assert f"tao: error: {bad}:".encode() in result.stderr and named in result.stderr, result.stderr
    assert daemon.tao("list", "--all", "--json").stdout == before


def test_a_task_failing_once_succeeds_on_its_second_attempt(new_daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    daemon = new_daemon("--retry-backoff", "0.1").start()
    counter = tmp_path / "counter"
    counter.mkdir()
    mounts = write_mounts(tmp_path / "counter.json", {"Mounts": [{"source": str(counter), "destination": "/counter"}]})
    result = daemon.tao("--mounts", str(mounts), "--retries", "2", "detectnet_v2", "once", "/counter/tried")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"first try: failing\nsecond try: succeeding\n"  # attached, it follows every attempt
    job_id = json.loads(daemon.tao("list", "--all", "--json").stdout)[0]["id"]
    assert daemon.job(job_id)["attempt"] == 2
    assert daemon.tao("logs", job_id, "--attempt", "1").stdout == b"first try: failing\n"
    assert daemon.tao("logs", job_id).stdout == b"second try: succeeding\n"
    until(lambda: not daemon.containers(), "the attempts' containers removed")
    shutil.rmtree(counter, ignore_errors=True)

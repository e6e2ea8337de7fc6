"""Pipelines in process: POST /v1/pipelines, its steps as jobs, the first failure's exit code, whole-file checks, stop."""

from __future__ import annotations

import time
from typing import Any

from tests.inprocess.conftest import Caller, Daemon

FLOW = """\
vars:
  word: hello
steps:
  first:
    task: detectnet_v2
    subtask: argv
    args: ["${vars.word}"]
  second:
    after: [first]
    task: detectnet_v2
    subtask: exit
    args: ["3"]
  third:
    after: [second]
    task: detectnet_v2
    subtask: argv
    args: [never]
"""


def run(caller: Caller, text: str, expect: int = 201, **body: Any) -> dict[str, Any]:
    response = caller.post("/v1/pipelines", json={"text": text, "source": "flow.yaml", **body})
    assert response.status_code == expect, response.text
    answer: dict[str, Any] = response.json()
    return answer


def wait_pipeline(caller: Caller, pipeline_id: str, *statuses: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (shown := caller.get(f"/v1/pipelines/{pipeline_id}").json())["status"] not in statuses:
        assert time.monotonic() < deadline, f"pipeline stayed {shown['status']}"
        time.sleep(0.01)
    return shown


def test_a_pipeline_runs_its_steps_in_order_and_ends_with_the_first_failure(daemon: Daemon) -> None:
    pipeline = run(daemon.alice, FLOW)
    assert [step["name"] for step in pipeline["steps"]] == ["first", "second", "third"]
    done = wait_pipeline(daemon.alice, pipeline["id"], "failed", "succeeded", "cancelled")
    first, second, third = done["steps"]
    assert (done["status"], done["exit_code"]) == ("failed", 3)
    assert (first["status"], second["status"], third["status"]) == ("succeeded", "failed", "cancelled")
    assert second["after"] == ["first"] and third["after"] == ["second"]
    assert daemon.alice.logs(first["job_id"]) == b"hello\x00"  # argv prints each argument NUL-terminated
    assert third["job_id"] not in [spec.job_id for spec in daemon.engine.launched]
    job = daemon.alice.job(third["job_id"])
    assert (job["pipeline_id"], job["step"]) == (pipeline["id"], "third")
    assert [shown["id"] for shown in daemon.alice.get("/v1/pipelines").json()["pipelines"]] == [pipeline["id"]]
    assert daemon.bob.get(f"/v1/pipelines/{pipeline['id']}").status_code == 404


def test_a_file_that_cannot_run_submits_nothing(daemon: Daemon) -> None:
    before = daemon.alice.get("/v1/jobs").json()["jobs"]
    cycle = FLOW.replace("  first:\n", "  first:\n    after: [third]\n")
    refused = run(daemon.alice, cycle, expect=422)["error"]
    assert refused["code"] == "invalid_workflow_file" and refused["field"] == "steps.first.after"
    assert refused["message"] == "flow.yaml:5:12: steps.first.after: a cycle: first -> third -> second -> first (each comes after the next)"
    unknown_task = FLOW.replace("task: detectnet_v2\n    subtask: exit", "task: nosuchtask\n    subtask: exit")
    refused = run(daemon.alice, unknown_task, expect=422)["error"]
    assert refused["code"] == "unknown_task"
    assert refused["message"].startswith("flow.yaml:8: steps.second: unknown task 'nosuchtask'; known tasks: detectnet_v2")
    assert daemon.alice.get("/v1/jobs").json()["jobs"] == before
    assert daemon.alice.get("/v1/pipelines").json()["pipelines"] == []


def test_stopping_a_pipeline_cancels_every_step(daemon: Daemon) -> None:
    held = FLOW.replace('subtask: argv\n    args: ["${vars.word}"]', "subtask: hold\n    args: [pipeline]")
    pipeline = run(daemon.alice, held)
    first = pipeline["steps"][0]["job_id"]
    daemon.alice.wait_for_logs(first, b"holding pipeline\n")
    assert daemon.alice.job(pipeline["steps"][1]["job_id"])["condition"] == f"waiting for {first}"
    assert daemon.alice.post(f"/v1/pipelines/{pipeline['id']}/stop").status_code == 202
    done = wait_pipeline(daemon.alice, pipeline["id"], "cancelled", "failed")
    assert [step["status"] for step in done["steps"]] == ["cancelled"] * 3


def test_the_dashboard_draws_a_pipeline_as_a_graph_of_its_steps(daemon: Daemon) -> None:
    pipeline = run(daemon.alice, FLOW)
    wait_pipeline(daemon.alice, pipeline["id"], "failed")
    page = daemon.client.get(f"/ui/pipelines/{pipeline['id']}")
    assert page.status_code == 200 and f'data-pipeline="{pipeline["id"]}"' in page.text
    graph = daemon.alice.get(f"/ui/parts/pipeline/{pipeline['id']}").text
    assert graph.count('<g class="step step-') == 3 and graph.count('<line class="edge"') == 2
    for name, status in (("first", "succeeded"), ("second", "failed"), ("third", "cancelled")):
        assert f'step-{status}">' in graph and f">{name}</text>" in graph
    assert '<text x="248" y="26" class="step-name">second</text>' in graph  # the second layer
    assert pipeline["id"] in daemon.alice.get("/ui/parts/pipelines").text
    assert daemon.bob.get(f"/ui/parts/pipeline/{pipeline['id']}").status_code == 404
    rows = daemon.alice.get("/ui/parts/jobs").text  # each step's row links its pipeline, as `tao list` names it
    for name in ("first", "second", "third"):
        assert f'<a class="part-of" href="/ui/pipelines/{pipeline["id"]}">pipeline {pipeline["id"]}: {name}</a>' in rows

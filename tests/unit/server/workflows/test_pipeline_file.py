"""Pipeline files read and checked whole: every fault named with file, line, column and key."""

from __future__ import annotations

import pytest

from tao_server.errors import InvalidWorkflowFile
from tao_server.workflows import yaml_nodes
from tao_server.workflows.pipeline_file import parse_pipeline
from tao_server.workflows.steps import LaunchContext, parse_step, step_request

GOOD = """\
vars:
  out: /workspace/run1
steps:
  train:
    task: detectnet_v2
    subtask: train
    args: [-e, /workspace/specs/train.txt, -r, "${vars.out}/train", --epochs, 10]
  export:
    after: [prune]
    task: detectnet_v2
    subtask: export
    args: ["$${literal}"]
  prune:
    after: [train]
    task: detectnet_v2
    subtask: prune
    gpus: 1
    retries: 2
    time: "1:00:00"
    env: {OUT: "${vars.out}"}
"""


def test_a_good_file_keeps_the_written_order_and_gives_an_order_to_submit_in() -> None:
    pipeline = parse_pipeline(GOOD, "flow.yaml")
    assert [step.name for step in pipeline.steps] == ["train", "export", "prune"]
    assert pipeline.order == ["train", "prune", "export"]
    train, export, prune = pipeline.steps
    assert train.args == ["-e", "/workspace/specs/train.txt", "-r", "/workspace/run1/train", "--epochs", "10"]
    assert export.args == ["${literal}"] and export.line == 8
    assert (prune.gpus, prune.retries, prune.time, prune.env) == ("1", 2, "1:00:00", {"OUT": "/workspace/run1"})


@pytest.mark.parametrize(
    ("text", "message", "field"),
    [
        ("steps: [\n", "flow.yaml:2:1: not valid YAML: expected the node content, but found '<stream end>'", None),
        ("steps:\n  a: {task: x, bogus: 1}\n", "flow.yaml:2:16: steps.a.bogus: unknown key; allowed: task, subtask, group, args, after, after_any, gpus, time, retries, env, notify", "steps.a.bogus"),
        ("steps:\n  a: {task: x, after: [zz]}\n", "flow.yaml:2:23: steps.a.after: no step 'zz' in this file (steps: a)", "steps.a.after"),
        ("steps:\n  a: {task: x, after: [c]}\n  b: {task: x, after: [a]}\n  c: {task: x, after: [b]}\n",
         "flow.yaml:2:23: steps.a.after: a cycle: a -> c -> b -> a (each comes after the next)", "steps.a.after"),
        ("steps:\n  a: {task: x, args: [\"${vars.nope}\"]}\n", "flow.yaml:2:23: steps.a.args[0]: ${vars.nope} is not defined (defined: none)", "steps.a.args[0]"),
        ("steps:\n  a: {task: x, retries: two}\n", "flow.yaml:2:25: steps.a.retries: must be a whole number, not str 'two'", "steps.a.retries"),
        ("steps:\n  a: {task: x}\n  a: {task: y}\n", "flow.yaml:3:3: steps.a: given twice", "steps.a"),
        ("steps:\n  a: {subtask: x}\n", "flow.yaml:2:6: steps.a: missing key task (the TAO task the step runs, such as detectnet_v2)", "steps.a"),
        ("jobs: {}\n", "flow.yaml:1:1: jobs: unknown key; allowed: vars, notify, steps", "jobs"),
        ("steps:\n  a: {task: [x]}\n", "flow.yaml:2:13: steps.a.task: must be a string, not a list", "steps.a.task"),
        ("", "flow.yaml: the file is empty", None),
    ],
)  # fmt: skip
def test_each_fault_is_named_with_file_line_and_key(text: str, message: str, field: str | None) -> None:
    with pytest.raises(InvalidWorkflowFile) as raised:
        parse_pipeline(text, "flow.yaml")
    assert (raised.value.message, raised.value.field, raised.value.source) == (message, field, "flow.yaml")


def test_a_step_can_leave_placeholders_for_later_and_fill_them() -> None:
    root = yaml_nodes.load('task: t\nargs: [-r, "${trial.dir}", "${vars.x}"]\n', "sweep.yaml")
    step = parse_step(root, "trial", {"vars.x": "1"}, deferred=frozenset({"trial.dir"}))
    assert step.args == ["-r", "${trial.dir}", "1"]
    assert step.filled({"trial.dir": "/w/3"}).args == ["-r", "/w/3", "1"]


def test_a_steps_env_joins_the_launcher_configs_envs() -> None:
    root = yaml_nodes.load("task: t\nenv: {A: new, C: c}\n", "f.yaml")
    step = parse_step(root, "s", {})
    config = {"Mounts": [], "Envs": [{"variable": "A", "value": "old"}, {"variable": "B", "value": "b"}]}
    request = step_request(step, LaunchContext(launch_config=config, launch_config_source="~/.tao_mounts.json"), after=["j1"])
    assert request.launch_config["Envs"] == [
        {"variable": "B", "value": "b"},
        {"variable": "A", "value": "new"},
        {"variable": "C", "value": "c"},
    ]
    assert request.after == ["j1"] and config["Envs"][0]["value"] == "old"  # the caller's config is left as it was

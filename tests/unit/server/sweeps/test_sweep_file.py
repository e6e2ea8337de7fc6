"""The sweep file's checks and a trial's arguments: pure logic, no daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from tao_server.errors import InvalidWorkflowFile
from tao_server.sweeps import sweep_file, trial_args

EXAMPLE = (Path(__file__).parents[3] / "fixtures" / "sweeps" / "issue-example.yaml").read_text()


def test_the_issue_example_reads_whole() -> None:
    spec = sweep_file.parse(EXAMPLE, "sweep.yaml")
    assert (spec.step.task, spec.step.subtask, spec.step.gpus, spec.trials, spec.parallel) == ("detectnet_v2", "train", "1", 20, 2)
    assert (spec.step.key, spec.step.line, spec.step.args[-1]) == ("step", 1, "${trial.dir}")  # left for each trial to fill
    assert [(p.name, p.type) for p in spec.params] == [("lr", "float"), ("batch", "int"), ("arch", "choice")]
    assert (spec.kpi, spec.direction, spec.value, spec.sampler, spec.seed, spec.pruner) == ("mAP", "maximize", "last", "tpe", 7, "median")
    assert sweep_file.SweepSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (("type: int", "type: integer"), "sweep.yaml:9:17: params.batch.type: 'integer' is none of float, int, choice"),
        (("high: 64", "high: 8"), "sweep.yaml:9:27: params.batch.low: the range is empty: low 8 is not below high 8"),
        (("objective: {kpi: mAP, direction: maximize}", ""), "sweep.yaml:1:1: objective: missing"),
        (("low: 1.0e-5", "low: -1"), "sweep.yaml:8:26: params.lr.low: -1: a log range starts above 0"),
        (("choices: [resnet18, resnet34]", "choices: []"), "sweep.yaml:10:33: params.arch.choices: a non-empty list"),
        (("trials: 20", "trails: 20"), "sweep.yaml:12:1: trails: unknown key"),
        (("pruner: median", "pruner: asha"), "sweep.yaml:16:9: pruner: 'asha' is none of median, hyperband, none"),
        (("parallel: 2", "parallel: 0"), "sweep.yaml:13:11: parallel: 0 is out of range: 1 to 256"),
        (("gpus: 1", "after: [x]"), "sweep.yaml:5:3: step.after: unknown key"),  # a sweep has one step: it comes after none
        (('"${trial.dir}"]', '"${trial.dri}"]'), "sweep.yaml:4:47: step.args[3]: ${trial.dri} is not defined (defined: params.arch"),
        (("step: 8", "step: 8.5"), "sweep.yaml:9:46: params.batch.step: 8.5: an int parameter's low, high and step are whole"),
    ],
)
def test_each_mistake_names_the_file_the_line_and_the_key(change: tuple[str, str], where: str) -> None:
    with pytest.raises(InvalidWorkflowFile) as raised:
        sweep_file.parse(EXAMPLE.replace(*change), "sweep.yaml")
    assert raised.value.message.startswith(where), raised.value.message
    assert raised.value.field == where.split(": ")[1]


def test_broken_yaml_names_the_line_and_column() -> None:
    with pytest.raises(InvalidWorkflowFile, match=r"sweep.yaml:3:1: not valid YAML"):
        sweep_file.parse("step:\n  task: [a\n", "sweep.yaml")


def test_a_trials_arguments_stay_a_list_with_placeholders_filled_and_overrides_appended() -> None:
    spec = sweep_file.parse(EXAMPLE.replace('"${trial.dir}"]', '"${trial.dir}", "name=a b;${params.arch}"]'), "sweep.yaml")
    params = {"lr": 0.001, "batch": 16, "arch": "resnet18"}
    assert trial_args.arguments(spec, 3, params) == [
        "-e", "/workspace/specs/train.yaml", "-r", "/workspace/tao-experiments/sweep1/3", "name=a b;resnet18",
        "train.optim.lr=0.001", "model.arch=resnet18",
    ]  # fmt: skip
    assert (
        trial_args.render_template("bs: ${params.bs}\ndir: ${trial.dir}\n", spec, 3, params)
        == "bs: 16\ndir: /workspace/tao-experiments/sweep1/3\n"
    )
    assert trial_args.command(spec, 3, params).endswith("'name=a b;resnet18' train.optim.lr=0.001 model.arch=resnet18")


def test_an_escaped_placeholder_reaches_the_trial_as_written_text() -> None:
    spec = sweep_file.parse(EXAMPLE.replace('"${trial.dir}"]', '"${trial.dir}", "$${trial.dir}"]'), "sweep.yaml")
    params = {"lr": 0.001, "batch": 16, "arch": "resnet18"}
    assert trial_args.arguments(spec, 3, params)[3:5] == ["/workspace/tao-experiments/sweep1/3", "${trial.dir}"]
    assert trial_args.render_template("a: $${params.bs}\nb: ${params.bs}\n", spec, 3, params) == "a: ${params.bs}\nb: 16\n"


def test_the_grid_sampler_needs_a_step_for_each_float() -> None:
    with pytest.raises(InvalidWorkflowFile, match=r"sweep.yaml:8:7: params\.lr\.step: missing: the grid sampler"):
        sweep_file.parse(EXAMPLE.replace("name: tpe", "name: grid"), "sweep.yaml")


def test_numbers_as_people_write_them() -> None:
    spec = sweep_file.parse(EXAMPLE.replace("low: 1.0e-5", "low: 1e-5"), "sweep.yaml")  # YAML 1.1 reads 1e-5 as a string
    assert spec.params[0].low == 1e-5
    with pytest.raises(InvalidWorkflowFile, match=r"sweep.yaml:8:26: params\.lr\.low: 'tiny' is not a number"):
        sweep_file.parse(EXAMPLE.replace("low: 1.0e-5", "low: tiny"), "sweep.yaml")


def test_the_step_is_a_workflow_step_with_its_env_time_and_retries() -> None:
    text = EXAMPLE.replace("  gpus: 1\n", "  gpus: 1\n  time: '1:00:00'\n  retries: 1\n  env: {RUN: '${trial.number}'}\n")
    spec = sweep_file.parse(text, "sweep.yaml")
    step = trial_args.trial_step(spec, 4, {"lr": 0.001, "batch": 16, "arch": "resnet34"})
    assert (step.time, step.retries, step.env) == ("1:00:00", 1, {"RUN": "4"})
    assert step.args[-3:] == ["/workspace/tao-experiments/sweep1/4", "train.optim.lr=0.001", "model.arch=resnet34"]


def test_a_trial_takes_one_gpu_unless_its_step_says_otherwise() -> None:
    assert sweep_file.parse(EXAMPLE.replace("  gpus: 1\n", ""), "sweep.yaml").step.gpus == "1"
    assert sweep_file.parse(EXAMPLE.replace("  gpus: 1\n", "  gpus: 0\n"), "sweep.yaml").step.gpus == "none"
    assert sweep_file.parse(EXAMPLE.replace("  gpus: 1\n", "  gpus: all\n"), "sweep.yaml").step.gpus == "all"

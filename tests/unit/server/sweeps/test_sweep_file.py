"""The sweep file's checks and a trial's arguments: pure logic, no daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from tao_server.errors import InvalidSweep
from tao_server.sweeps import sweep_file, trial_args

EXAMPLE = (Path(__file__).parents[3] / "fixtures" / "sweeps" / "issue-example.yaml").read_text()


def test_the_issue_example_reads_whole() -> None:
    spec = sweep_file.parse(EXAMPLE, "sweep.yaml")
    assert (spec.task, spec.subtask, spec.gpus, spec.trials, spec.parallel) == ("detectnet_v2", "train", "1", 20, 2)
    assert [(p.name, p.type) for p in spec.params] == [("lr", "float"), ("batch", "int"), ("arch", "choice")]
    assert (spec.kpi, spec.direction, spec.value, spec.sampler, spec.seed, spec.pruner) == ("mAP", "maximize", "last", "tpe", 7, "median")
    assert sweep_file.SweepSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (("type: int", "type: integer"), "sweep.yaml, line 9: params.batch.type: 'integer' is none of float, int, choice"),
        (("high: 64", "high: 8"), "sweep.yaml, line 9: params.batch.low: the range is empty: low 8 is not below high 8"),
        (("objective: {kpi: mAP, direction: maximize}", ""), "sweep.yaml, line 1: objective: missing"),
        (("low: 1.0e-5", "low: -1"), "sweep.yaml, line 8: params.lr.low: -1: a log range starts above 0"),
        (("choices: [resnet18, resnet34]", "choices: []"), "sweep.yaml, line 10: params.arch.choices: a non-empty list"),
        (("trials: 20", "trails: 20"), "sweep.yaml, line 12: trails: unknown key"),
        (("pruner: median", "pruner: asha"), "sweep.yaml, line 16: pruner: 'asha' is none of median, hyperband, none"),
        (("parallel: 2", "parallel: 0"), "sweep.yaml, line 13: parallel: 0: a whole number from 1"),
    ],
)
def test_each_mistake_names_the_file_the_line_and_the_key(change: tuple[str, str], where: str) -> None:
    with pytest.raises(InvalidSweep) as raised:
        sweep_file.parse(EXAMPLE.replace(*change), "sweep.yaml")
    assert raised.value.message.startswith(where), raised.value.message


def test_broken_yaml_names_the_line_and_column() -> None:
    with pytest.raises(InvalidSweep, match=r"sweep.yaml: line \d+, column \d+: not valid YAML"):
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


def test_the_grid_sampler_needs_a_step_for_each_float() -> None:
    with pytest.raises(InvalidSweep, match=r"params\.lr\.step: missing: the grid sampler"):
        sweep_file.parse(EXAMPLE.replace("name: tpe", "name: grid"), "sweep.yaml")

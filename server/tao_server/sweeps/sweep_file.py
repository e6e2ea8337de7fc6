"""A sweep file read and checked whole: every mistake named by file, line, column and key, before anything runs.

    step:           the task each trial runs: a workflow step (workflows/steps.py), as a pipeline's steps are
    trial_dir:      the trials' parent dir, as the container sees it: ${trial.dir} is <trial_dir>/<number>
    params:         NAME: {type: float|int|choice, low, high, log, step, choices, override|template}
    objective:      {kpi, direction: maximize|minimize, value: last|best}
    trials, parallel, gpu_hours, sampler: {name, seed}, pruner, spec_template

The file is read as pipeline files are (workflows/yaml_nodes.py), so a mistake raises the same
InvalidWorkflowFile. In the step, `${trial.dir}`, `${trial.number}` and `${params.NAME}` are left
for each trial to fill (Step.filled). `parse` gives a `SweepSpec`, which is what the sweep's row
keeps (`to_json`, `from_json`): a restarted daemon goes on from it without reading the file again.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, NoReturn

import yaml

from tao_server.workflows import yaml_nodes
from tao_server.workflows.steps import STEP_KEYS, Step, parse_step
from tao_server.workflows.yaml_nodes import Located

TOP_KEYS = ("step", "trial_dir", "params", "objective", "trials", "parallel", "gpu_hours", "sampler", "pruner", "spec_template")
TRIAL_STEP_KEYS = tuple(key for key in STEP_KEYS if key not in ("after", "after_any"))  # a sweep has one step
PARAM_KEYS = ("type", "low", "high", "log", "step", "choices", "override", "template")
PARAM_TYPES = ("float", "int", "choice")
SAMPLERS = ("tpe", "random", "cmaes", "grid")
PRUNERS = ("median", "hyperband", "none")
TRIAL_STEP = "trial"  # the step's name, for the job's messages
MAX_TRIALS = 10_000
MAX_PARALLEL = 256
_INT, _FLOAT, _BOOL = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool"


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] = field(default_factory=list)
    override: str | None = None  # a Hydra-style KEY=VALUE appended to the arguments
    template: str | None = None  # fills ${params.NAME} in the spec template


@dataclass(frozen=True)
class SweepSpec:
    step: Step  # its ${trial.*} and ${params.*} left to fill for each trial
    trial_dir: str
    params: list[Param]
    kpi: str
    direction: str = "maximize"
    value: str = "last"
    trials: int = 20
    parallel: int = 1
    gpu_hours: float | None = None
    sampler: str = "tpe"
    seed: int | None = None
    pruner: str = "median"
    spec_template: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SweepSpec:
        params = [Param(**param) for param in data["params"]]
        return cls(**{**data, "step": Step(**data["step"]), "params": params})


def parse(text: str, source: str | None) -> SweepSpec:
    """The sweep the file asks for, or InvalidWorkflowFile naming the file, the line, the column and the key at fault."""
    root = yaml_nodes.load(text, source or "the sweep file")
    top = yaml_nodes.mapping(root, TOP_KEYS)
    for key, what in (
        ("step", "the task each trial runs, as a pipeline step: {task, subtask, args, gpus}"),
        ("trial_dir", "the trials' parent dir, as the container sees it"),
        ("params", "at least one parameter, NAME: {type: float|int|choice, ...}"),
        ("objective", "{kpi: NAME, direction: maximize|minimize}, NAME a KPI of the task's status file"),
    ):
        if key not in top:
            _missing(root, key, what)
    params = _params(top["params"])
    sampler, seed = _sampler(top["sampler"]) if "sampler" in top else ("tpe", None)
    if sampler == "grid":
        for param in params:
            if param.type == "float" and param.step is None:
                _missing(yaml_nodes.mapping(top["params"])[param.name], "step", "the grid sampler takes a float parameter in steps")
    return SweepSpec(
        step=_step(top["step"], params),
        trial_dir=_path(top["trial_dir"]),
        params=params,
        **_objective(top["objective"]),
        trials=yaml_nodes.whole_number(top["trials"], 1, MAX_TRIALS) if "trials" in top else 20,
        parallel=yaml_nodes.whole_number(top["parallel"], 1, MAX_PARALLEL) if "parallel" in top else 1,
        gpu_hours=_budget(top["gpu_hours"]) if "gpu_hours" in top else None,
        sampler=sampler,
        seed=seed,
        pruner=_pruner(top["pruner"]) if "pruner" in top else "median",
        spec_template=_path(top["spec_template"]) if "spec_template" in top else None,
    )


def _step(at: Located, params: list[Param]) -> Step:
    """The step each trial runs; the placeholders each trial fills are left in it (checked here: no other name is allowed)."""
    entries = yaml_nodes.mapping(at, TRIAL_STEP_KEYS)
    deferred = frozenset({"trial.dir", "trial.number", *(f"params.{param.name}" for param in params)})
    step = parse_step(at, TRIAL_STEP, {}, deferred)
    # A trial takes one GPU unless its step says otherwise: a job's default (every GPU) would run one trial at a time.
    return step if "gpus" in entries else replace(step, gpus="1")


def _objective(at: Located) -> dict[str, Any]:
    entries = yaml_nodes.mapping(at, ("kpi", "direction", "value"))
    if "kpi" not in entries:
        _missing(at, "kpi", "the KPI to optimise, a name the task writes to its status file")
    return {
        "kpi": _nonempty(entries["kpi"]),
        "direction": _one_of(entries["direction"], ("maximize", "minimize")) if "direction" in entries else "maximize",
        "value": _one_of(entries["value"], ("last", "best")) if "value" in entries else "last",
    }


def _sampler(at: Located) -> tuple[str, int | None]:
    if isinstance(at.node, yaml.ScalarNode):
        return _one_of(at, SAMPLERS), None
    entries = yaml_nodes.mapping(at, ("name", "seed"))
    name = _one_of(entries["name"], SAMPLERS) if "name" in entries else "tpe"
    seed = yaml_nodes.whole_number(entries["seed"], 0, 2**32 - 1) if "seed" in entries else None
    return name, seed


def _pruner(at: Located) -> str:
    if isinstance(at.node, yaml.ScalarNode) and at.node.tag == "tag:yaml.org,2002:null":
        return "none"  # `pruner:` left empty
    return _one_of(at, PRUNERS)


def _params(at: Located) -> list[Param]:
    entries = yaml_nodes.mapping(at)
    if not entries:
        at.fail("no parameters: at least one, NAME: {type: float|int|choice, ...}")
    return [_param(name, spec) for name, spec in entries.items()]


def _param(name: str, at: Located) -> Param:
    entries = yaml_nodes.mapping(at, PARAM_KEYS)
    if "type" not in entries:
        _missing(at, "type", f"one of {', '.join(PARAM_TYPES)}")
    kind = _one_of(entries["type"], PARAM_TYPES)
    override = _nonempty(entries["override"]) if "override" in entries else None
    template = _nonempty(entries["template"]) if "template" in entries else None
    if override is None and template is None:
        at.fail("says neither `override` (a KEY=VALUE argument) nor `template` (${params.NAME} in spec_template)")
    if kind == "choice":
        if "choices" not in entries:
            _missing(at, "choices", "a non-empty list of values (strings or numbers)")
        choices = [_scalar(item) for item in yaml_nodes.sequence(entries["choices"])]
        if not choices:
            entries["choices"].fail("a non-empty list of values (strings or numbers)")
        return Param(name, kind, choices=choices, override=override, template=template)
    return _range(name, kind, at, entries, override, template)


def _range(name: str, kind: str, at: Located, entries: dict[str, Located], override: str | None, template: str | None) -> Param:
    """A float or int parameter: low < high, a log range above 0 and without a step, whole numbers for an int."""
    for key in ("low", "high"):
        if key not in entries:
            _missing(at, key, "a number")
    low, high = _number(entries["low"]), _number(entries["high"])
    log = _flag(entries["log"]) if "log" in entries else False
    if low >= high:
        entries["low"].fail(f"the range is empty: low {low:g} is not below high {high:g}")
    if log and low <= 0:
        entries["low"].fail(f"{low:g}: a log range starts above 0")
    step = _number(entries["step"]) if "step" in entries else None
    if step is not None and (step <= 0 or step > high - low):
        entries["step"].fail(f"{step:g}: above 0 and at most high - low ({high - low:g})")
    if step is not None and log:
        entries["step"].fail("a log range takes no step")
    if kind == "int":
        for key, value in (("low", low), ("high", high), ("step", step)):
            if value is not None and value != int(value):
                entries[key].fail(f"{value:g}: an int parameter's low, high and step are whole numbers")
        low, high, step = int(low), int(high), int(step) if step is not None else None
    return Param(name, kind, low=low, high=high, log=log, step=step, override=override, template=template)


def _number(at: Located) -> float:
    """A number: YAML's ints and floats, and a plain word Python reads as one (1e-5, which YAML 1.1 calls a string)."""
    word = yaml_nodes.word(at).replace("_", "")
    try:
        if at.node.tag == _INT:
            return int(word, 0)
        value = float(word.replace(".inf", "inf").replace(".nan", "nan")) if at.node.tag == _FLOAT or _plain(at.node) else None
    except ValueError:
        value = None
    if value is None or not math.isfinite(value):
        at.fail(f"{yaml_nodes.word(at)!r} is not a number")
    return value


def _plain(node: yaml.Node) -> bool:
    """Whether a scalar is written without quotes: a quoted "1e-5" is the user's string, never a number."""
    return isinstance(node, yaml.ScalarNode) and node.style is None


def _flag(at: Located) -> bool:
    if at.node.tag != _BOOL:
        at.fail(f"{yaml_nodes.word(at)!r}: true or false")
    return str(at.node.value).lower() in ("true", "yes", "on", "y")


def _scalar(at: Located) -> Any:
    """A choice as YAML reads it: a bool, an int, a float or a string."""
    if at.node.tag == _BOOL:
        return _flag(at)
    if at.node.tag in (_INT, _FLOAT):
        return _number(at)
    return yaml_nodes.text(at)


def _budget(at: Located) -> float:
    hours = _number(at)
    if hours <= 0:
        at.fail(f"{hours:g}: a budget above 0 GPU-hours")
    return float(hours)


def _one_of(at: Located, allowed: tuple[str, ...]) -> str:
    value = yaml_nodes.word(at)
    if value not in allowed:
        at.fail(f"{value!r} is none of {', '.join(allowed)}")
    return value


def _nonempty(at: Located) -> str:
    value = yaml_nodes.text(at)
    if not value.strip():
        at.fail("must not be empty")
    return value


def _path(at: Located) -> str:
    value = _nonempty(at)
    if not value.startswith("/"):
        at.fail(f"{value!r}: an absolute path, as the container sees it")
    return value


def _missing(parent: Located, key: str, what: str) -> NoReturn:
    """A required key that is not there: named with the mapping it belongs in, at that mapping's line."""
    yaml_nodes.raise_at(parent.source, parent.node.start_mark, f"{parent.key}.{key}" if parent.key else key, f"missing: {what}")

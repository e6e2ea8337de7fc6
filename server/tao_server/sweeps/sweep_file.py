"""A sweep file read and checked whole: every mistake named by file, line and key, before anything runs.

    step:           the task each trial runs, written as a pipeline step is (task, subtask, args, gpus)
    trial_dir:      the trials' parent dir, as the container sees it: ${trial.dir} is <trial_dir>/<number>
    params:         NAME: {type: float|int|choice, low, high, log, step, choices, override|template}
    objective:      {kpi, direction: maximize|minimize, value: last|best}
    trials, parallel, gpu_hours, sampler: {name, seed}, pruner, spec_template

The file is YAML (so JSON too). `parse` gives a `SweepSpec`, which is what the sweep's row keeps
(`to_json`, `from_json`): a restarted daemon goes on from it without reading the file again.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from tao_server.errors import InvalidSweep

TOP_KEYS = ("step", "trial_dir", "params", "objective", "trials", "parallel", "gpu_hours", "sampler", "pruner", "spec_template")
STEP_KEYS = ("task", "subtask", "args", "gpus", "group")
PARAM_KEYS = ("type", "low", "high", "log", "step", "choices", "override", "template")
PARAM_TYPES = ("float", "int", "choice")
SAMPLERS = ("tpe", "random", "cmaes", "grid")
PRUNERS = ("median", "hyperband", "none")
MAX_TRIALS = 10_000
MAX_PARALLEL = 256


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
    task: str
    subtask: str | None
    args: list[str]
    gpus: str
    group: str | None
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
        return cls(**{**data, "params": params})


class _Where:
    """Where each key of the file is: its line, found from YAML's nodes."""

    def __init__(self, source: str, lines: dict[tuple[str, ...], int]) -> None:
        self.source = source
        self.lines = lines

    def fail(self, path: tuple[str, ...], message: str) -> InvalidSweep:
        """The error for the key at `path` (or, for one that is missing, the nearest key above it that is there)."""
        key = ".".join(path)
        line = None
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                break
        at = f"{self.source}, line {line}" if line is not None else self.source
        return InvalidSweep(f"{at}: {key}: {message}" if key else f"{at}: {message}", field=key or None, source=self.source)


def parse(text: str, source: str | None) -> SweepSpec:
    """The sweep the file asks for, or InvalidSweep naming the file, the line and the key at fault."""
    import yaml

    name = source or "the sweep file"
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise InvalidSweep(f"{name}: {at}not valid YAML: {getattr(exc, 'problem', None) or exc}", source=name) from None
    lines: dict[tuple[str, ...], int] = {}
    if node is not None:
        _index(node, (), lines)
    where = _Where(name, lines)
    if not isinstance(data, dict):
        raise where.fail((), f"a sweep file is a mapping of {', '.join(TOP_KEYS)}")
    _only(where, (), data, TOP_KEYS)
    step = _step(where, data.get("step"))
    objective = _objective(where, data.get("objective"))
    trials = _int(where, ("trials",), data.get("trials", 20), 1, MAX_TRIALS)
    sampler, seed = _sampler(where, data.get("sampler", "tpe"))
    params = _params(where, data.get("params"))
    if sampler == "grid":
        for param in params:
            if param.type == "float" and param.step is None:
                raise where.fail(("params", param.name, "step"), "missing: the grid sampler takes a float parameter in steps")
    return SweepSpec(
        **step,
        trial_dir=_text(where, ("trial_dir",), data.get("trial_dir"), required=True, absolute=True) or "",
        params=params,
        **objective,
        trials=trials,
        parallel=_int(where, ("parallel",), data.get("parallel", 1), 1, MAX_PARALLEL),
        gpu_hours=_budget(where, data.get("gpu_hours")),
        sampler=sampler,
        seed=seed,
        pruner=_choice(where, ("pruner",), "none" if data.get("pruner", "median") is None else data.get("pruner", "median"), PRUNERS),
        spec_template=_text(where, ("spec_template",), data.get("spec_template"), required=False, absolute=True),
    )


def _index(node: Any, path: tuple[str, ...], lines: dict[tuple[str, ...], int]) -> None:
    import yaml

    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, str(key.value))
            lines[child] = key.start_mark.line + 1
            _index(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for number, item in enumerate(node.value):
            _index(item, (*path, str(number)), lines)


def _only(where: _Where, path: tuple[str, ...], data: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in data:
        if key not in allowed:
            raise where.fail((*path, str(key)), f"unknown key; allowed: {', '.join(allowed)}")


def _step(where: _Where, step: Any) -> dict[str, Any]:
    if not isinstance(step, dict):
        raise where.fail(("step",), "missing: the task each trial runs, as {task, subtask, args, gpus}")
    _only(where, ("step",), step, STEP_KEYS)
    args = step.get("args", [])
    if not isinstance(args, list) or not all(isinstance(arg, str | int | float) and not isinstance(arg, bool) for arg in args):
        raise where.fail(("step", "args"), "a list of strings: the task's arguments, as the container gets them")
    gpus = step.get("gpus", 1)
    if isinstance(gpus, bool) or not ((isinstance(gpus, int) and gpus >= 0) or gpus in ("none", "all")):
        raise where.fail(("step", "gpus"), f"{gpus!r}: a count of GPUs (0 for none), or all")
    return {
        "task": _text(where, ("step", "task"), step.get("task"), required=True) or "",
        "subtask": _text(where, ("step", "subtask"), step.get("subtask"), required=False),
        "args": [str(arg) for arg in args],
        "gpus": "none" if gpus in (0, "none") else str(gpus),
        "group": _text(where, ("step", "group"), step.get("group"), required=False),
    }


def _objective(where: _Where, objective: Any) -> dict[str, Any]:
    if not isinstance(objective, dict):
        raise where.fail(("objective",), "missing: {kpi: NAME, direction: maximize|minimize}, NAME a KPI of the task's status file")
    _only(where, ("objective",), objective, ("kpi", "direction", "value"))
    return {
        "kpi": _text(where, ("objective", "kpi"), objective.get("kpi"), required=True) or "",
        "direction": _choice(where, ("objective", "direction"), objective.get("direction", "maximize"), ("maximize", "minimize")),
        "value": _choice(where, ("objective", "value"), objective.get("value", "last"), ("last", "best")),
    }


def _sampler(where: _Where, sampler: Any) -> tuple[str, int | None]:
    if isinstance(sampler, str):
        return _choice(where, ("sampler",), sampler, SAMPLERS), None
    if not isinstance(sampler, dict):
        raise where.fail(("sampler",), f"a sampler's name ({', '.join(SAMPLERS)}), or {{name, seed}}")
    _only(where, ("sampler",), sampler, ("name", "seed"))
    name = _choice(where, ("sampler", "name"), sampler.get("name", "tpe"), SAMPLERS)
    seed = sampler.get("seed")
    if seed is not None:
        seed = _int(where, ("sampler", "seed"), seed, 0, 2**32 - 1)
    return name, seed


def _params(where: _Where, params: Any) -> list[Param]:
    if not isinstance(params, dict) or not params:
        raise where.fail(("params",), "missing: at least one parameter, NAME: {type: float|int|choice, ...}")
    return [_param(where, str(name), spec) for name, spec in params.items()]


def _param(where: _Where, name: str, spec: Any) -> Param:
    path = ("params", name)
    if not isinstance(spec, dict):
        raise where.fail(path, "a mapping: {type: float|int|choice, low, high, ...}")
    _only(where, path, spec, PARAM_KEYS)
    kind = _choice(where, (*path, "type"), spec.get("type"), PARAM_TYPES)
    override = _text(where, (*path, "override"), spec.get("override"), required=False)
    template = _text(where, (*path, "template"), spec.get("template"), required=False)
    if override is None and template is None:
        raise where.fail(path, "says neither `override` (a KEY=VALUE argument) nor `template` (${params.NAME} in spec_template)")
    if kind == "choice":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices or not all(isinstance(c, str | int | float | bool) for c in choices):
            raise where.fail((*path, "choices"), "a non-empty list of values (strings or numbers)")
        return Param(name, kind, choices=choices, override=override, template=template)
    low, high = _number(where, (*path, "low"), spec.get("low")), _number(where, (*path, "high"), spec.get("high"))
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise where.fail((*path, "log"), f"{log!r}: true or false")
    if low >= high:
        raise where.fail((*path, "low"), f"the range is empty: low {low:g} is not below high {high:g}")
    if log and low <= 0:
        raise where.fail((*path, "low"), f"{low:g}: a log range starts above 0")
    step = spec.get("step")
    if step is not None:
        step = _number(where, (*path, "step"), step)
        if step <= 0 or step > high - low:
            raise where.fail((*path, "step"), f"{step:g}: above 0 and at most high - low ({high - low:g})")
        if log:
            raise where.fail((*path, "step"), "a log range takes no step")
    if kind == "int":
        if any(value is not None and value != int(value) for value in (low, high, step)):
            raise where.fail((*path, "low"), "an int parameter's low, high and step are whole numbers")
        low, high, step = int(low), int(high), int(step) if step is not None else None
    return Param(name, kind, low=low, high=high, log=log, step=step, override=override, template=template)


def _number(where: _Where, path: tuple[str, ...], value: Any) -> float:
    if value is None:
        raise where.fail(path, "missing: a number")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise where.fail(path, f"{value!r} is not a number")
    return value


def _int(where: _Where, path: tuple[str, ...], value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise where.fail(path, f"{value!r}: a whole number from {low} to {high}")
    return value


def _budget(where: _Where, value: Any) -> float | None:
    if value is None:
        return None
    hours = _number(where, ("gpu_hours",), value)
    if hours <= 0:
        raise where.fail(("gpu_hours",), f"{hours:g}: a budget above 0 GPU-hours")
    return float(hours)


def _choice(where: _Where, path: tuple[str, ...], value: Any, allowed: tuple[str, ...]) -> str:
    if value is None:
        raise where.fail(path, f"missing: one of {', '.join(allowed)}")
    if value not in allowed:
        raise where.fail(path, f"{value!r} is none of {', '.join(allowed)}")
    return str(value)


def _text(where: _Where, path: tuple[str, ...], value: Any, required: bool, absolute: bool = False) -> str | None:
    if value is None:
        if required:
            raise where.fail(path, "missing")
        return None
    if not isinstance(value, str) or not value.strip():
        raise where.fail(path, f"{value!r}: a non-empty string")
    if absolute and not value.startswith("/"):
        raise where.fail(path, f"{value!r}: an absolute path, as the container sees it")
    return value

"""What a trial runs: the sweep's step with ${trial.dir}, ${trial.number} and ${params.NAME} filled in
(Step.filled, as a pipeline fills its vars), a Hydra-style KEY=VALUE appended for each parameter with
`override`, and the spec template's copy.

Arguments stay a list, each filled in where it stands: nothing is ever joined into a shell string.
"""

from __future__ import annotations

import shlex
from dataclasses import replace
from typing import Any

from tao_server.sweeps.sweep_file import SweepSpec
from tao_server.workflows.steps import Step, fill_later


def trial_dir(spec: SweepSpec, number: int) -> str:
    return f"{spec.trial_dir.rstrip('/')}/{number}"


def shown(value: Any) -> str:
    """A parameter's value as an argument or a spec says it: true/false, ints bare, floats as Python repeats them exactly."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _trial_values(spec: SweepSpec, number: int) -> dict[str, str]:
    return {"trial.dir": trial_dir(spec, number), "trial.number": str(number)}


def trial_step(spec: SweepSpec, number: int, params: dict[str, Any]) -> Step:
    """The step trial `number` runs: the sweep's, filled in, then KEY=VALUE for each parameter with `override`."""
    values = {**_trial_values(spec, number), **{f"params.{name}": shown(value) for name, value in params.items()}}
    step = spec.step.filled(values)
    overrides = [f"{param.override}={shown(params[param.name])}" for param in spec.params if param.override and param.name in params]
    return replace(step, args=[*step.args, *overrides])


def arguments(spec: SweepSpec, number: int, params: dict[str, Any]) -> list[str]:
    """The trial's arguments, as its job gets them."""
    return trial_step(spec, number, params).args


def template_values(spec: SweepSpec, params: dict[str, Any]) -> dict[str, str]:
    """What ${params.NAME} becomes in the spec template: each parameter with `template`, by that name."""
    return {param.template: shown(params[param.name]) for param in spec.params if param.template and param.name in params}


def render_template(text: str, spec: SweepSpec, number: int, params: dict[str, Any]) -> str:
    """The spec template's copy for a trial: ${params.T} is the value of the parameter whose `template` is T."""
    values = {f"params.{name}": value for name, value in template_values(spec, params).items()}
    return fill_later(text, {**_trial_values(spec, number), **values})


def command(spec: SweepSpec, number: int, params: dict[str, Any]) -> str:
    """The `tao` command line that runs the trial again, as one would type it."""
    step = spec.step
    return shlex.join(
        [
            "tao",
            *([step.group] if step.group else []),
            step.task,
            *([step.subtask] if step.subtask else []),
            *arguments(spec, number, params),
        ]
    )

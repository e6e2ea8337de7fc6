"""What a trial runs: the step's arguments with ${trial.dir}, ${trial.number} and ${params.NAME} filled in,
a Hydra-style KEY=VALUE appended for each parameter with `override`, and the spec template's copy.

Arguments stay a list, each filled in where it stands: nothing is ever joined into a shell string.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from tao_server.sweeps.sweep_file import SweepSpec

_PLACEHOLDER = re.compile(r"\$\{(trial\.dir|trial\.number|params\.[A-Za-z0-9_.-]+)\}")


def trial_dir(spec: SweepSpec, number: int) -> str:
    return f"{spec.trial_dir.rstrip('/')}/{number}"


def shown(value: Any) -> str:
    """A parameter's value as an argument or a spec says it: true/false, ints bare, floats as Python repeats them exactly."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def fill(text: str, spec: SweepSpec, number: int, params: dict[str, Any]) -> str:
    """`text` with its placeholders filled; one naming an unknown parameter stays as written."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "trial.dir":
            return trial_dir(spec, number)
        if name == "trial.number":
            return str(number)
        param = name.removeprefix("params.")
        return shown(params[param]) if param in params else match.group(0)

    return _PLACEHOLDER.sub(value, text)


def arguments(spec: SweepSpec, number: int, params: dict[str, Any]) -> list[str]:
    """The trial's arguments: the step's, filled in, then KEY=VALUE for each parameter with `override`."""
    args = [fill(arg, spec, number, params) for arg in spec.args]
    args += [f"{param.override}={shown(params[param.name])}" for param in spec.params if param.override and param.name in params]
    return args


def template_values(spec: SweepSpec, params: dict[str, Any]) -> dict[str, str]:
    """What ${params.NAME} becomes in the spec template: each parameter with `template`, by that name."""
    return {param.template: shown(params[param.name]) for param in spec.params if param.template and param.name in params}


def render_template(text: str, spec: SweepSpec, number: int, params: dict[str, Any]) -> str:
    """The spec template's copy for a trial: ${params.T} is the value of the parameter whose `template` is T."""
    values = template_values(spec, params)

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("params.") and name.removeprefix("params.") in values:
            return values[name.removeprefix("params.")]
        return fill(match.group(0), spec, number, params)

    return _PLACEHOLDER.sub(value, text)


def command(spec: SweepSpec, number: int, params: dict[str, Any]) -> str:
    """The `tao` command line that runs the trial again, as one would type it."""
    words = ["tao", spec.task, *([spec.subtask] if spec.subtask else []), *arguments(spec, number, params)]
    return shlex.join(words)

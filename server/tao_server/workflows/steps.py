"""A step: one job written in a workflow file, read with where each of its keys is, and submitted for a caller.

A pipeline's steps are these, and so is a sweep's trial ("written as a pipeline step is"):

    task: detectnet_v2          # required
    subtask: train
    group: ...                  # the task's group, where the manifest needs it
    args: [-e, /workspace/specs/train.txt, -r, "${vars.out}/train"]
    after: [convert]            # names of other steps that must succeed first (after_any: that must end)
    gpus: 1                     # a count, or all; time: "2:00:00"; retries: 2
    env: {NAME: value}          # beside the launcher config's Envs
    notify: [URL]               # beside the pipeline's and the caller's defaults

`${NAMESPACE.NAME}` in any string of a step is replaced from `values` (a pipeline's `vars.NAME`, a
trial's `trial.dir`); `$${` is a literal `${`. A name not in `values` and not `deferred` (filled in
later, as a trial's directory) is an error naming the key. `submit_step` is the one way a step
becomes a job of its caller: the caller's launcher config applies to it as to any job.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tao_server.access.caller import Caller
from tao_server.errors import InvalidRequest, InvalidWorkflowFile
from tao_server.models import MAX_RETRIES, Job, JobCreate, PullPolicy
from tao_server.workflows import yaml_nodes
from tao_server.workflows.yaml_nodes import Located

if TYPE_CHECKING:
    from tao_server.jobs.service import JobService

STEP_KEYS = ("task", "subtask", "group", "args", "after", "after_any", "gpus", "time", "retries", "env", "notify")
STEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_PLACEHOLDER = re.compile(r"\$(\$?)\{([^}]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Step:
    """One step, checked; `after` and `after_any` name other steps; `line` is where it starts in its file."""

    name: str
    task: str
    subtask: str | None = None
    group: str | None = None
    args: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    after_any: list[str] = field(default_factory=list)
    gpus: str = "auto"
    time: str | None = None
    retries: int = 0
    env: dict[str, str] = field(default_factory=dict)
    notify: list[str] = field(default_factory=list)
    source: str = ""
    line: int = 0
    key: str = ""  # where it is written: `steps.NAME` in a pipeline, `step` in a sweep

    @property
    def where(self) -> str:
        """FILE:LINE of the step, for messages about it."""
        return f"{self.source}:{self.line}"

    @property
    def where_key(self) -> str:
        """FILE:LINE: KEY of the step, for messages about it."""
        return f"{self.where}: {self.key or 'steps.' + self.name}"

    def filled(self, values: Mapping[str, str]) -> Step:
        """The step with the placeholders left for later (a trial's) filled from `values`; they were checked at parse."""

        def fill(text: str) -> str:
            return fill_later(text, values)

        return replace(
            self,
            args=[fill(arg) for arg in self.args],
            time=fill(self.time) if self.time is not None else None,
            env={name: fill(value) for name, value in self.env.items()},
            notify=[fill(url) for url in self.notify],
        )


@dataclass(frozen=True)
class LaunchContext:
    """What applies to every step a caller submits at once: their launcher config, pull policy and extra notify URLs."""

    launch_config: Any = None
    launch_config_source: str | None = None
    notify: list[str] = field(default_factory=list)
    pull: PullPolicy | None = None


def parse_step(at: Located, name: str, values: Mapping[str, str], deferred: frozenset[str] = frozenset()) -> Step:
    """The step written at `at` (its key, such as `steps.train`), checked whole; InvalidWorkflowFile names file, line and key."""
    if not STEP_NAME.match(name):
        at.fail("a step's name is letters, digits, - and _ (up to 64), starting with a letter or digit")
    entries = yaml_nodes.mapping(at, STEP_KEYS)
    if "task" not in entries:
        at.fail("missing key task (the TAO task the step runs, such as detectnet_v2)")

    def text(key: str) -> str | None:
        return substitute(entries[key], yaml_nodes.text(entries[key]), values, deferred) if key in entries else None

    def words(key: str) -> list[str]:
        items = yaml_nodes.sequence(entries[key]) if key in entries else []
        return [substitute(item, yaml_nodes.word(item), values, deferred) for item in items]

    return Step(
        name=name,
        task=text("task") or "",
        subtask=text("subtask"),
        group=text("group"),
        args=words("args"),
        after=_step_names(entries.get("after")),
        after_any=_step_names(entries.get("after_any")),
        gpus=_gpus(entries["gpus"]) if "gpus" in entries else "auto",
        time=substitute(entries["time"], yaml_nodes.word(entries["time"]), values, deferred) if "time" in entries else None,
        retries=yaml_nodes.whole_number(entries["retries"], 0, MAX_RETRIES) if "retries" in entries else 0,
        env=_env(entries["env"], values, deferred) if "env" in entries else {},
        notify=words("notify"),
        source=at.source,
        line=at.line,
        key=at.key,
    )


def substitute(at: Located, text: str, values: Mapping[str, str], deferred: frozenset[str] = frozenset()) -> str:
    """`text` with each `${NAME}` replaced from `values`; a name in neither `values` nor `deferred` is an error at `at`."""

    def one(match: re.Match[str]) -> str:
        if match.group(1):  # $${...}: the text ${...} itself, kept escaped while a later fill is to come
            return match.group(0) if deferred else match.group(0)[1:]
        name = match.group(2).strip()
        if name in values:
            return values[name]
        if name in deferred:
            return "${" + name + "}"
        known = ", ".join(sorted([*values, *deferred])) or "none"
        at.fail(f"${{{name}}} is not defined (defined: {known})")

    return _PLACEHOLDER.sub(one, text)


def fill_later(text: str, values: Mapping[str, str]) -> str:
    """`text` with the `${NAME}` that `values` has filled in, the others left as written (after `substitute` checked them).

    `$${...}` is the text `${...}`: this is the last fill, so the escape is taken off here.
    """
    return _PLACEHOLDER.sub(lambda m: m.group(0)[1:] if m.group(1) else values.get(m.group(2), m.group(0)), text)


def _step_names(at: Located | None) -> list[str]:
    if at is None:
        return []
    names = [yaml_nodes.text(item) for item in yaml_nodes.sequence(at)]
    if len(set(names)) != len(names):
        at.fail("names a step twice")
    return names


def _gpus(at: Located) -> str:
    """A step's GPUs as a request says them: a count ("0" is none) or all."""
    if yaml_nodes.word(at) == "all":
        return "all"
    count = yaml_nodes.whole_number(at, 0, 1024)
    return "none" if count == 0 else str(count)


def _env(at: Located, values: Mapping[str, str], deferred: frozenset[str]) -> dict[str, str]:
    env = {}
    for name, value in yaml_nodes.mapping(at).items():
        if not _ENV_NAME.match(name):
            value.fail("an environment variable's name is letters, digits and _, not starting with a digit")
        env[name] = substitute(value, yaml_nodes.word(value), values, deferred)
    return env


def step_request(step: Step, launch: LaunchContext, after: list[str] = [], after_any: list[str] = []) -> JobCreate:  # noqa: B006
    """The job request a step makes, with the caller's launcher config (its Envs beside the step's env) and dependency ids."""
    return JobCreate(
        task=step.task,
        subtask=step.subtask,
        group=step.group,
        args=step.args,
        launch_config=_with_env(launch.launch_config, step.env),
        launch_config_source=launch.launch_config_source,
        gpus=step.gpus,
        time=step.time,
        retries=step.retries,
        notify=[*step.notify, *launch.notify],
        pull=launch.pull,
        after=list(after),
        after_any=list(after_any),
    )


def check_step(jobs: JobService, caller: Caller, step: Step, launch: LaunchContext) -> list[str]:
    """Everything submit_step would refuse for this step but its dependencies (they are jobs only once submitted); its warnings."""
    with _at_step(step):
        return jobs.check(step_request(step, launch), caller)


def submit_step(
    jobs: JobService,
    caller: Caller,
    step: Step,
    launch: LaunchContext,
    step_jobs: Mapping[str, str] = {},
    tag: tuple[str, str] | None = None,
    trial_of: tuple[str, int] | None = None,
    job_id: str | None = None,
) -> Job:
    """Submit `step` as a job of `caller`'s: `step_jobs` maps the steps it comes after to their jobs' ids;
    `tag` is (pipeline id, step name) shown on the job, `trial_of` (sweep id, trial number). A `job_id`
    makes submitting again harmless: the same request under the same id finds the job it made."""
    request = step_request(step, launch, [step_jobs[name] for name in step.after], [step_jobs[name] for name in step.after_any])
    if job_id is not None:
        request = request.model_copy(update={"id": job_id})
    with _at_step(step):
        job, _, _ = jobs.submit(request, caller, tag=tag, trial_of=trial_of)
    return job


@contextmanager
def _at_step(step: Step) -> Iterator[None]:
    """A refusal of the step's job names the step and where it is written, keeping its own code and field."""
    try:
        yield
    except InvalidRequest as exc:
        if not isinstance(exc, InvalidWorkflowFile):
            exc.message = f"{step.where_key}: {exc.message}"
            exc.args = (exc.message,)
            if exc.source is None:
                exc.source = step.source
        raise


def _with_env(launch_config: Any, env: dict[str, str]) -> Any:
    """The launcher config with the step's env beside its Envs (the step's value wins for a name given in both)."""
    if not env:
        return launch_config
    config = dict(launch_config) if isinstance(launch_config, dict) else {}
    kept = [entry for entry in config.get("Envs") or [] if not (isinstance(entry, dict) and entry.get("variable") in env)]
    config["Envs"] = [*kept, *({"variable": name, "value": value} for name, value in env.items())]
    return config

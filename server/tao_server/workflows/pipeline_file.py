"""A pipeline file read and checked whole: its vars, its steps in the order written, and an order to submit them in.

    vars:                 # optional: NAME: value, used as ${vars.NAME} in any string of a step
      out: /workspace/tao-experiments/run1
    notify: [URL]         # optional: told of every step's start and end
    steps:                # a mapping, step name -> step (workflows/steps.py), in the order written
      train: {task: detectnet_v2, subtask: train, args: [...]}
      prune: {after: [train], task: detectnet_v2, subtask: prune, args: [...]}

Every error names the file, the line and column, and the key: unknown keys, bad types, undefined
`${vars.X}`, steps named in `after` that the file does not have, and cycles (naming their steps).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tao_server.workflows import yaml_nodes
from tao_server.workflows.steps import Step, parse_step

PIPELINE_KEYS = ("vars", "notify", "steps")
MAX_STEPS = 100
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class PipelineFile:
    """A checked pipeline file: its steps in the order written, `order` one in which each comes after those it needs."""

    source: str
    steps: list[Step]
    order: list[str]
    notify: list[str]

    def step(self, name: str) -> Step:
        return next(step for step in self.steps if step.name == name)


def parse_pipeline(text: str, source: str) -> PipelineFile:
    """The file's pipeline, checked whole; InvalidWorkflowFile (file, line, column, key) at the first fault."""
    root = yaml_nodes.load(text, source)
    top = yaml_nodes.mapping(root, PIPELINE_KEYS)
    if "steps" not in top:
        root.fail("missing key steps (a mapping: step name -> step)")
    values = _vars(top["vars"]) if "vars" in top else {}
    entries = yaml_nodes.mapping(top["steps"])
    if not entries:
        top["steps"].fail("no steps")
    if len(entries) > MAX_STEPS:
        top["steps"].fail(f"{len(entries)} steps; a pipeline may have {MAX_STEPS}")
    steps = [parse_step(at, name, values) for name, at in entries.items()]
    for step in steps:
        for key in ("after", "after_any"):
            for name in getattr(step, key):
                if name not in entries:
                    yaml_nodes.mapping(entries[step.name])[key].fail(f"no step {name!r} in this file (steps: {', '.join(entries)})")
                if name == step.name:
                    yaml_nodes.mapping(entries[step.name])[key].fail("a step cannot come after itself")
    order = _order(steps, entries)
    notify = [yaml_nodes.word(item) for item in yaml_nodes.sequence(top["notify"])] if "notify" in top else []
    return PipelineFile(source=source, steps=steps, order=order, notify=notify)


def _vars(at: yaml_nodes.Located) -> dict[str, str]:
    values = {}
    for name, value in yaml_nodes.mapping(at).items():
        if not _VAR_NAME.match(name):
            value.fail("a var's name is letters, digits and _, not starting with a digit")
        values[f"vars.{name}"] = yaml_nodes.word(value)
    return values


def _order(steps: list[Step], entries: dict[str, yaml_nodes.Located]) -> list[str]:
    """The steps in an order where each follows those it needs (the written order where it allows); a cycle is an error naming it."""
    needs = {step.name: [*step.after, *step.after_any] for step in steps}
    order: list[str] = []
    state: dict[str, str] = {}  # "open" while its needs are being visited, "done" once placed

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "open":
            cycle = [*path[path.index(name) :], name]
            first = cycle[0]
            key = "after" if cycle[1] in next(s for s in steps if s.name == first).after else "after_any"
            yaml_nodes.mapping(entries[first])[key].fail(f"a cycle: {' -> '.join(cycle)} (each comes after the next)")
        state[name] = "open"
        for need in needs[name]:
            visit(need, [*path, name])
        state[name] = "done"
        order.append(name)

    for step in steps:
        visit(step.name, [])
    return order

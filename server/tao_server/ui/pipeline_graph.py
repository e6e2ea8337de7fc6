"""A pipeline drawn as a graph of its steps: a layered layout, rendered as SVG on the server.

Each step sits in the layer after the deepest of the steps it comes after, in the order its file
wrote them within a layer; an edge runs from each step to those that come after it. The SVG is
built from numbers and autoescaped names in a template (parts/pipeline.html): no script draws it,
so the page's content security policy holds as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from tao_server.workflows.pipeline_models import PipelinePublic

NODE_WIDTH = 168
NODE_HEIGHT = 46
LAYER_GAP = 64  # between a layer's right edge and the next layer's left
ROW_GAP = 18
MARGIN = 8


@dataclass(frozen=True)
class Node:
    name: str
    status: str
    job_id: str
    label: str  # the status and exit code, as the node's second line
    x: int
    y: int


@dataclass(frozen=True)
class Edge:
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass(frozen=True)
class Graph:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


def layout(pipeline: PipelinePublic) -> Graph:
    """Where each step and edge goes: layers left to right, rows top to bottom."""
    steps = {step.name: step for step in pipeline.steps}
    depth: dict[str, int] = {}

    def layer(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in depth:
            before = [after for after in steps[name].after if after in steps and after not in seen]
            depth[name] = 1 + max((layer(after, seen | {name}) for after in before), default=-1)
        return depth[name]

    rows: dict[int, int] = {}
    nodes: dict[str, Node] = {}
    for step in pipeline.steps:
        column = layer(step.name)
        row = rows.get(column, 0)
        rows[column] = row + 1
        label = step.status.value + (f" ({step.exit_code})" if step.exit_code not in (None, 0) else "")
        if step.attempt > 1:
            label += f", attempt {step.attempt}"
        x = MARGIN + column * (NODE_WIDTH + LAYER_GAP)
        y = MARGIN + row * (NODE_HEIGHT + ROW_GAP)
        nodes[step.name] = Node(step.name, step.status.value, step.job_id, label, x, y)
    edges = [
        Edge(nodes[after].x + NODE_WIDTH, nodes[after].y + NODE_HEIGHT // 2, node.x, node.y + NODE_HEIGHT // 2)
        for step in pipeline.steps
        for after in step.after
        if after in nodes and (node := nodes[step.name]) is not None
    ]
    columns = max(depth.values(), default=0) + 1
    width = 2 * MARGIN + columns * NODE_WIDTH + (columns - 1) * LAYER_GAP
    height = 2 * MARGIN + max(rows.values(), default=1) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
    return Graph(list(nodes.values()), edges, width, height)

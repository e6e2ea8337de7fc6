"""Jobs, image pulls and training curves as HTML, for Jupyter's rich display (`_repr_html_`).

Every value comes from the daemon, and so from whoever submitted the job (arguments, errors, a
task's name): each is escaped before it reaches the page. Pull progress is folded from the job's
events (`{"image", "layer", "status", "current"?, "total"?}`), as `tao` folds them for its bars.
A job's training shows as a progress bar and a sparkline per series: inline SVG, so a notebook
needs neither matplotlib nor any script to draw the loss curve as it grows. Only the notebook
SDK imports this module: the CLI never pays for it.
"""

from __future__ import annotations

from html import escape
from typing import Any

from tao_client._training import Metrics, number
from tao_common.progress import progress_text

# The columns of a job list, and the rows of a single job's table, in the order people read them.
LIST_COLUMNS = ("id", "task", "subtask", "status", "progress", "exit_code", "image", "created_at", "finished_at")
JOB_FIELDS = (
    "id",
    "task",
    "subtask",
    "status",
    "exit_code",
    "error",
    "condition",
    "args",
    "image",
    "gpus",
    "created_at",
    "started_at",
    "finished_at",
)
LAYER_DONE = ("Pull complete", "Already exists")


def text(value: Any) -> str:
    """A value as escaped text: lists joined with spaces, None as an empty cell, progress as `tao list` writes it."""
    if value is None:
        return ""
    if isinstance(value, dict) and "fraction" in value:
        return escape(progress_text(value))
    if isinstance(value, (list, tuple)):
        return escape(" ".join(str(item) for item in value))
    return escape(str(value))


def job_table(data: dict[str, Any], progress: PullProgress | None = None, metrics: Metrics | None = None) -> str:
    """One job as a two-column table of its main fields, with its image pull's progress and its training curves when there are."""
    rows = "".join(f"<tr><th>{escape(name)}</th><td>{text(data.get(name))}</td></tr>" for name in JOB_FIELDS)
    if data.get("warnings"):  # what the daemon warned of at submission: each on a line of its own
        rows += f"<tr><th>warnings</th><td>{'<br>'.join(escape(str(line)) for line in data['warnings'])}</td></tr>"
    rows += training_rows(data)
    pull = progress.html() if progress is not None and progress.layers else ""
    curves = metrics_html(metrics) if metrics is not None and metrics.series else ""
    return f'<table class="tao-job">{rows}</table>{pull}{curves}'


def training_rows(data: dict[str, Any]) -> str:
    """The job's training progress as a bar and its words, or why it cannot be followed; nothing when neither."""
    shown = data.get("progress")
    if shown:
        fraction = shown.get("fraction")
        bar = f'<progress value="{fraction:.4f}" max="1"></progress> ' if fraction is not None else ""
        words = escape(progress_text(shown))
        message = f"<br>{escape(str(shown['message']))}" if shown.get("message") else ""
        return f"<tr><th>progress</th><td>{bar}{words}{message}</td></tr>"
    if data.get("progress_unavailable"):
        return f"<tr><th>progress</th><td>unavailable: {escape(str(data['progress_unavailable']))}</td></tr>"
    return ""


def metrics_html(metrics: Metrics, limit: int = 12) -> str:
    """A row per series: its name, a sparkline of its values, its first, least, greatest and last value."""
    rows = []
    for name, points in list(metrics.series.items())[:limit]:
        values = [point["value"] for point in points]
        if not values:
            continue
        cells = "".join(f"<td>{number(value)}</td>" for value in (values[0], min(values), max(values), values[-1]))
        rows.append(f"<tr><th>{escape(name)}</th><td>{sparkline(values)}</td>{cells}</tr>")
    head = "<tr><th>series</th><th>curve</th><th>first</th><th>min</th><th>max</th><th>last</th></tr>"
    return f'<table class="tao-metrics">{head}{"".join(rows)}</table>'


def sparkline(values: list[float], width: int = 240, height: int = 40) -> str:
    """The values as a line in an SVG of `width` x `height` (numbers only: nothing in it comes as text from the daemon)."""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = width / max(1, len(values) - 1)
    points = " ".join(f"{index * step:.1f},{height - 2 - (value - low) / span * (height - 4):.1f}" for index, value in enumerate(values))
    return (
        f'<svg class="tao-sparkline" width="{width}" height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f'<polyline fill="none" stroke="#76b900" stroke-width="1.5" points="{points}"/></svg>'
    )


def jobs_table(jobs: list[dict[str, Any]]) -> str:
    """Jobs as one table, a row each."""
    head = "".join(f"<th>{escape(name)}</th>" for name in LIST_COLUMNS)
    rows = "".join("<tr>" + "".join(f"<td>{text(job.get(name))}</td>" for name in LIST_COLUMNS) + "</tr>" for job in jobs)
    return f'<table class="tao-jobs"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


class PullProgress:
    """An image pull as the job's events tell it: bytes per layer, which layers are done, the last word."""

    def __init__(self) -> None:
        self.image = ""
        self.status = ""
        self.layers: dict[str, tuple[int, int | None]] = {}
        self.done: set[str] = set()
        self.finished = False

    def fold(self, events: list[dict[str, Any]]) -> bool:
        """Fold in a job's events (`GET /v1/jobs/{id}/events`); False when none was about the pull."""
        pulls = [event["data"] for event in events if event["type"] == "pull"]
        for data in pulls:
            self.update(data)
        return bool(pulls)

    def update(self, event: dict[str, Any]) -> None:
        """Fold one `pull` event's data in."""
        self.image = event.get("image") or self.image
        layer, status = event.get("layer", ""), event.get("status", "")
        if not layer or status.startswith("Pulling from"):  # the engine names the tag as that line's layer
            self.status = status
            self.finished = self.finished or status == "pulled"
            return
        current, total = self.layers.get(layer, (0, None))
        if "total" in event:
            current, total = event.get("current", 0), event["total"]
        self.layers[layer] = (current, total)
        if status in LAYER_DONE:
            self.done.add(layer)

    @property
    def bytes_done(self) -> int:
        return sum(total if layer in self.done and total else current for layer, (current, total) in self.layers.items())

    @property
    def bytes_total(self) -> int:
        return sum(total or 0 for _, total in self.layers.values())

    def html(self) -> str:
        """A progress bar per layer, under the image's name."""
        rows = "".join(self._layer_row(layer, current, total) for layer, (current, total) in self.layers.items())
        state = "pulled" if self.finished else escape(self.status or "pulling")
        caption = f"{escape(self.image)}: {state}, {len(self.done)}/{len(self.layers)} layers, {_megabytes(self.bytes_done)}/{_megabytes(self.bytes_total)}"
        return f'<table class="tao-pull"><caption>{caption}</caption>{rows}</table>'

    def _layer_row(self, layer: str, current: int, total: int | None) -> str:
        finished = layer in self.done or self.finished
        value, maximum = (1, 1) if finished else (current, total or 1)
        label = "done" if finished else f"{_megabytes(current)}/{_megabytes(total or 0)}"
        return f'<tr><td>{escape(layer)}</td><td><progress value="{value}" max="{maximum}"></progress></td><td>{escape(label)}</td></tr>'


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"

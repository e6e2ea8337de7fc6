"""Jobs and image pulls as HTML, for Jupyter's rich display (`_repr_html_`).

Every value comes from the daemon, and so from whoever submitted the job (arguments, errors, a
task's name): each is escaped before it reaches the page. Pull progress is folded from the job's
events (`{"image", "layer", "status", "current"?, "total"?}`), as `tao` folds them for its bars.
Only the notebook SDK imports this module: the CLI never pays for it.
"""

from __future__ import annotations

from html import escape
from typing import Any

# The columns of a job list, and the rows of a single job's table, in the order people read them.
LIST_COLUMNS = ("id", "task", "subtask", "status", "exit_code", "image", "created_at", "finished_at")
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
    """A value as escaped text: lists joined with spaces, None as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return escape(" ".join(str(item) for item in value))
    return escape(str(value))


def job_table(data: dict[str, Any], progress: PullProgress | None = None) -> str:
    """One job as a two-column table of its main fields, with its image pull's progress when there is one."""
    rows = "".join(f"<tr><th>{escape(name)}</th><td>{text(data.get(name))}</td></tr>" for name in JOB_FIELDS)
    if data.get("warnings"):  # what the daemon warned of at submission: each on a line of its own
        rows += f"<tr><th>warnings</th><td>{'<br>'.join(escape(str(line)) for line in data['warnings'])}</td></tr>"
    pull = progress.html() if progress is not None and progress.layers else ""
    return f'<table class="tao-job">{rows}</table>{pull}'


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

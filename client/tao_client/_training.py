"""A job's metric series as the daemon gives them, in the forms people read (its progress in words: tao_common.progress).

`Metrics` wraps `GET /v1/jobs/{id}/metrics`: its series, a row per epoch (`tao metrics`), the GPU
use the daemon sampled (`gpu_text`), a DataFrame (`to_pandas()`, pandas imported only there) and
sparklines for a notebook. Nothing here imports
more than the standard library at import time: `tao list` pays for none of it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any


def number(value: float) -> str:
    """A metric's value in a table: six significant digits."""
    return f"{value:.6g}"


class Metrics:
    """A job's metric series (`GET /v1/jobs/{id}/metrics`): each numeric `graphical` and `kpi` entry of its status file, by key."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Metrics({', '.join(f'{name}: {len(points)} points' for name, points in self.series.items()) or 'none'})"

    @property
    def series(self) -> dict[str, list[dict[str, Any]]]:
        """{name: [{"epoch", "step", "value", "time"}, ...]}, each in the order the task wrote it."""
        series: dict[str, list[dict[str, Any]]] = self.data["series"]
        return series

    @property
    def skipped(self) -> dict[str, int]:
        """What the daemon left out of the status file, by reason (invalid_json, line_too_long, unsafe_file, ...)."""
        skipped: dict[str, int] = self.data.get("skipped") or {}
        return skipped

    @property
    def unavailable(self) -> str | None:
        """Why the job's progress cannot be followed; None when it can."""
        return self.data.get("unavailable")

    @property
    def sampled(self) -> list[str]:
        """The series the daemon samples over time (GPU use: gpu_utilization in %, gpu_memory_used in MiB): points without epoch or step."""
        sampled: list[str] = self.data.get("sampled") or []
        return sampled

    def gpu_text(self) -> str:
        """ "GPU 87% now (mean 64%), 12000 MiB (peak 20480 MiB)": the job's GPU use from its sampled series; "" without any."""
        parts = []
        if utilization := self._values("gpu_utilization"):
            parts.append(f"GPU {utilization[-1]:.0f}% now (mean {sum(utilization) / len(utilization):.0f}%)")
        if memory := self._values("gpu_memory_used"):
            parts.append(f"{memory[-1]:.0f} MiB (peak {max(memory):.0f} MiB)")
        return ", ".join(parts)

    def _values(self, name: str) -> list[float]:
        return [point["value"] for point in self.series.get(name, [])] if name in self.sampled else []

    def latest(self) -> dict[str, float]:
        """The last value of each series."""
        return {name: points[-1]["value"] for name, points in self.series.items() if points}

    def rows(self) -> list[tuple[int | None, int | None, dict[str, float]]]:
        """(epoch, step, {series: value}): a row per epoch and step, in the order they first appear (sampled series aside)."""
        rows: dict[tuple[int | None, int | None], dict[str, float]] = {}
        order: dict[tuple[int | None, int | None], float] = {}
        for name, points in self.series.items():
            if name in self.sampled:
                continue
            for point in points:
                key = (point["epoch"], point["step"])
                rows.setdefault(key, {})[name] = point["value"]
                order[key] = min(order.get(key, float("inf")), _sort_key(point))
        return [(epoch, step, rows[(epoch, step)]) for epoch, step in sorted(rows, key=lambda key: order[key])]

    def to_pandas(self) -> Any:
        """A pandas DataFrame, a row per point: series, epoch, step, value, time (pandas is imported only here).

        `df.pivot_table(index="epoch", columns="series", values="value")` gives a column per series.
        """
        import importlib

        try:
            pandas = importlib.import_module("pandas")
        except ImportError:
            raise ImportError("to_pandas() needs pandas: pip install pandas, or 'tao-launcher[notebook]'") from None
        records = [{"series": name, **point} for name, points in self.series.items() for point in points]
        frame = pandas.DataFrame(records, columns=["series", "epoch", "step", "value", "time"])
        frame["time"] = pandas.to_datetime(frame["time"], utc=True)
        return frame.astype({"epoch": "Int64", "step": "Int64"})

    def _repr_html_(self) -> str:
        from tao_client import _display

        return _display.metrics_html(self)


def _sort_key(point: dict[str, Any]) -> float:
    """Where a point stands in the run: by epoch, then step (a point with neither keeps its place)."""
    epoch, step = point["epoch"], point["step"]
    return (epoch if epoch is not None else 0) * 1e12 + (step if step is not None else 0)

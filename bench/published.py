"""The figures docs/performance.md shows, and the page written from them.

bench/published.json keeps the last published measurement of each figure, with the date and
the machine it was measured on. `bench/run.py --write-docs` merges a run's figures into it (each
replaces the figure of the same number) and writes the page again; the page is never edited by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = ROOT / "bench" / "published.json"
PAGE = ROOT / "docs" / "performance.md"
HEADER = "<!-- Written by bench/run.py --write-docs from bench/published.json: do not edit by hand. -->\n\n"


def merge(report: dict[str, Any], path: Path = PUBLISHED) -> dict[str, Any]:
    """`report`'s figures (bench/run.py's results file) in place of the published ones of the same numbers."""
    published = json.loads(path.read_text())
    date, machine = report["date"][:10], machine_text(report["machine"])
    fresh = {figure["number"]: record(figure, date, machine) for figure in report["figures"]}
    kept = [figure for figure in published["figures"] if figure["number"] not in fresh]
    published["figures"] = sorted([*kept, *fresh.values()], key=lambda figure: _order(figure["number"]))
    path.write_text(json.dumps(published, indent=2, ensure_ascii=False) + "\n")
    return published


def record(figure: dict[str, Any], date: str, machine: str) -> dict[str, Any]:
    """A run's figure (Figure.summary()) as the page shows it."""
    met = {True: "met", False: "**missed**", None: "reported"}[figure["met"]]
    return {
        "number": figure["number"],
        "name": figure["name"],
        "measured": measured(figure),
        "target": figure["target"],
        "met": met,
        "date": date,
        "machine": machine,
    }


def measured(figure: dict[str, Any]) -> str:
    """ "median 187.9 ms (154.7–311.1) vs docker 150.7 ms: **1.25**", and the p99 where the figure has one."""
    unit = figure["unit"]
    text = f"median {value(figure['median'], unit)} ({value(figure['min'], unit)}–{value(figure['max'], unit)})"
    if "baseline" in figure:
        text += f" vs {figure['baseline']['of']} {value(figure['baseline']['median'], unit)}: **{figure['ratio']:.3g}**"
    if "p99" in figure:
        text += f", p99 {value(figure['p99'], unit)}"
    return text


def value(number: float, unit: str) -> str:
    if unit == "s":
        return f"{number * 1000:.1f} ms" if number < 10 else f"{number:.1f} s"
    return f"{number:,.1f} {unit}"


def machine_text(machine: dict[str, Any]) -> str:
    """The results file's machine in a few words: cores, memory, the engine's and Python's versions."""
    return f"{machine['cpus']} cores, {machine['memory_gb']:.0f} GB, Docker {machine['docker']}, Python {machine['python']}"


def page(published: dict[str, Any]) -> str:
    lines = [
        "# Performance",
        "",
        *published["intro"],
        "",
        "| # | figure | measured | target | | measured on |",
        "|---|---|---|---|---|---|",
    ]
    for figure in published["figures"]:
        cells = [
            figure["number"],
            figure["name"],
            figure["measured"],
            figure["target"],
            figure["met"],
            f"{figure['date']}, {figure['machine']}",
        ]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    lines += ["", *published["notes"]]
    return HEADER + "\n".join(lines) + "\n"


def write(published: dict[str, Any], path: Path = PAGE) -> None:
    path.write_text(page(published))


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _order(number: str) -> tuple[int, str]:
    digits = "".join(char for char in number if char.isdigit())
    return int(digits or 0), number

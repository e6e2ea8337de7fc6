"""The site's reference pages are the code's: regenerated here and compared with what is committed."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gen_reference():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "scripts" / "gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", ["cli.md", "rest.md", "settings.md"])
def test_the_committed_reference_page_is_what_the_code_generates(gen_reference, page: str, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", gen_reference.HELP_WIDTH)
    for name in [name for name in os.environ if name.startswith("TAO_")]:
        monkeypatch.delenv(name)
    committed = (ROOT / "docs" / "reference" / page).read_text()
    assert gen_reference.PAGES[page]() == committed, f"docs/reference/{page} is stale: run python scripts/gen_reference.py"


def test_the_performance_page_is_what_the_published_figures_give() -> None:
    spec = importlib.util.spec_from_file_location("published", ROOT / "bench" / "published.py")
    assert spec is not None and spec.loader is not None
    published = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(published)
    figures = json.loads((ROOT / "bench" / "published.json").read_text())
    assert published.page(figures) == (ROOT / "docs" / "performance.md").read_text(), (
        "docs/performance.md is stale: bench/run.py --write-docs"
    )
    assert all(figure["date"] and figure["machine"] and figure["target"] for figure in figures["figures"])


def test_a_runs_figures_replace_the_published_ones_of_the_same_numbers(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("published", ROOT / "bench" / "published.py")
    assert spec is not None and spec.loader is not None
    published = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(published)
    path = tmp_path / "published.json"
    path.write_text((ROOT / "bench" / "published.json").read_text())
    report = {
        "date": "2027-01-02T03:04:05+00:00",
        "machine": {"cpus": 8, "memory_gb": 31.9, "docker": "26.1.5", "python": "3.11.7"},
        "figures": [
            {"number": "2", "name": "trivial task: tao vs docker run --rm", "unit": "s", "median": 0.18, "min": 0.15, "max": 0.3,
             "target": "ratio <= 1.3", "met": True, "baseline": {"of": "docker", "median": 0.15}, "ratio": 1.2},
        ],
    }  # fmt: skip
    merged = published.merge(report, path)
    two = [figure for figure in merged["figures"] if figure["number"] == "2"]
    assert two == [
        {
            "number": "2",
            "name": "trivial task: tao vs docker run --rm",
            "measured": "median 180.0 ms (150.0 ms–300.0 ms) vs docker 150.0 ms: **1.2**",
            "target": "ratio <= 1.3",
            "met": "met",
            "date": "2027-01-02",
            "machine": "8 cores, 32 GB, Docker 26.1.5, Python 3.11.7",
        }
    ]
    assert len(merged["figures"]) == len(json.loads((ROOT / "bench" / "published.json").read_text())["figures"])
    assert [figure["number"] for figure in merged["figures"]][:3] == ["1a", "1b", "2"]

"""The site's reference pages are the code's: regenerated here and compared with what is committed."""

from __future__ import annotations

import importlib.util
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

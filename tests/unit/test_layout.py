"""The layout rules hold (scripts/check_layout.py): unique module names, short modules and functions, neutral shared code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_layout_rule_holds() -> None:
    spec = importlib.util.spec_from_file_location("check_layout", ROOT / "scripts" / "check_layout.py")
    assert spec is not None and spec.loader is not None
    check_layout = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_layout)
    assert check_layout.problems() == []

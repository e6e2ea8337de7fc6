"""The web libraries the daemon serves are the files their npm packages ship (scripts/vendor_web.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_vendored_file_is_the_one_recorded() -> None:
    spec = importlib.util.spec_from_file_location("vendor_web", ROOT / "scripts" / "vendor_web.py")
    assert spec is not None and spec.loader is not None
    vendor_web = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vendor_web)
    assert vendor_web.problems() == []

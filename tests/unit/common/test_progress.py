"""A job's progress in words (tao_common.progress): `tao list`'s PROGRESS column and the dashboard's rows."""

from __future__ import annotations

from typing import Any

import pytest

from tao_common.progress import clock, progress_text


@pytest.mark.parametrize(
    ("progress", "text"),
    [
        ({"epoch": 12, "max_epoch": 80, "fraction": 0.15, "eta_seconds": 2470.4}, "12/80 15% ETA 0:41:10"),
        ({"epoch": 3, "max_epoch": None, "fraction": None, "eta_seconds": None}, "epoch 3"),
        ({"epoch": None, "step": 500, "max_step": 1000, "fraction": 0.5, "eta_seconds": None}, "step 500/1000 50%"),
        ({"epoch": 80, "max_epoch": 80, "fraction": 1.0, "eta_seconds": None}, "80/80 100%"),
        (None, ""),
    ],
)
def test_the_progress_column_says_the_epoch_of_how_many_how_far_and_the_time_left(progress: dict[str, Any] | None, text: str) -> None:
    assert progress_text(progress) == text


def test_a_long_eta_is_counted_in_hours() -> None:
    assert clock(93784) == "26:03:04"

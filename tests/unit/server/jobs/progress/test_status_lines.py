"""TAO's status file read line by line (jobs/progress/status_lines.py) and folded into progress and series (jobs/progress/progress_state.py).

The fixtures in tests/fixtures/status-json are shaped as TAO's status logger writes them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tao_server.jobs.progress.metric_store import MAX_SERIES, Point
from tao_server.jobs.progress.progress_state import ProgressState, fraction, shown
from tao_server.jobs.progress.status_lines import MAX_KEY, NotALine, eta_seconds, parse

FIXTURES = Path(__file__).resolve().parents[4] / "fixtures" / "status-json"


def folded(name: str) -> tuple[ProgressState, list[Point], list[dict]]:
    state, points, events = ProgressState(), [], []
    for number, raw in enumerate((FIXTURES / name).read_bytes().splitlines()):
        added, event = state.fold(parse(raw), now=1000.0 + number)
        points += added
        events += [event] if event else []
    return state, points, events


def series(points: list[Point]) -> dict[str, list[tuple[int | None, int | None, float]]]:
    found: dict[str, list[tuple[int | None, int | None, float]]] = {}
    for point in points:
        found.setdefault(point.series, []).append((point.epoch, point.step, point.value))
    return found


def test_a_pytorch_run_gives_its_progress_and_each_kpi_once_per_epoch() -> None:
    state, points, events = folded("pytorch-train.jsonl")
    # The epoch line repeats the logger's last KPIs: not a new measurement. A KPI line without an epoch
    # belongs to the epoch its object names (or the last one read) and the last step read.
    assert series(points) == {
        "train_loss": [(0, 100, 0.7123), (1, 200, 0.5517), (2, 300, 0.4402)],
        "val_loss": [(1, 200, 0.6021)],
        "mAP": [(1, 200, 0.4127)],
    }
    progress = state.progress()
    assert progress is not None
    assert {key: progress[key] for key in ("epoch", "max_epoch", "step", "max_step", "fraction", "status", "message")} == {
        "epoch": 2,
        "max_epoch": 2,
        "step": 300,
        "max_step": 300,
        "fraction": 1.0,
        "status": "SUCCESS",
        "message": "Training finished successfully.",
    }
    assert progress["kpi"] == {"train_loss": 0.4402, "val_loss": 0.6021, "mAP": 0.4127}
    assert progress["eta_seconds"] == 0.0
    # Each message is told once, though TAO alternates two of them every epoch.
    assert [event["message"] for event in events] == [
        "Starting Training Loop.",
        "Training loop in progress",
        "Train metrics generated.",
        "Eval metrics generated.",
        "Training loop complete.",
        "Training finished successfully.",
    ]
    assert state.skipped == {}


def test_a_tensorflow_1_run_gives_values_written_as_strings_and_epochs_counted_from_one() -> None:
    state, points, _ = folded("tf1-train.jsonl")
    assert series(points) == {
        "loss": [(1, None, 0.35213), (2, None, 0.29871), (3, None, 0.27104)],
        "learning_rate": [(1, None, 5e-05), (2, None, 5e-05), (3, None, 2.5e-05)],
        "validation_accuracy": [(2, None, 0.8125), (3, None, 0.84375)],  # in both objects: one point
    }
    progress = state.progress()
    assert progress is not None and progress["fraction"] == 1.0 and progress["kpi"] == {"validation_accuracy": 0.84375}


def test_the_state_saved_between_two_reads_folds_the_next_line_as_one_state_would() -> None:
    lines = (FIXTURES / "pytorch-train.jsonl").read_bytes().splitlines()
    whole, _, _ = folded("pytorch-train.jsonl")
    state = ProgressState()
    for number, raw in enumerate(lines):
        state = ProgressState.from_json(json.loads(json.dumps(state.to_json())))  # as the database gives it back
        state.fold(parse(raw), now=1000.0 + number)
    assert state.to_json() == whole.to_json()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{", "invalid_json"),
        (b"\xff\xfe\x00garbage", "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b"12", "not_an_object"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
        (b'{"epoch": ' + b"9" * 5000 + b"}", "invalid_json"),
    ],
)
def test_a_line_that_is_no_json_object_is_refused_with_its_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(NotALine) as refused:
        parse(raw)
    assert refused.value.reason == reason


def test_each_field_of_the_wrong_kind_is_skipped_and_counted_and_the_rest_kept() -> None:
    line = parse(
        json.dumps(
            {
                "epoch": True,
                "max_epoch": -3,
                "step": 2**60,
                "max_step": 12.0,
                "eta": "soon",
                "status": "DONE",
                "message": ["not", "text"],
                "graphical": {
                    "loss": float("nan"),
                    "acc": float("inf"),
                    "lr": "1e-4",
                    "huge": 10**400,
                    "hist": "[0.1, 0.2]",
                    "flag": True,
                    "x" * (MAX_KEY + 1): 1.0,
                    "ok": 0.5,
                },
                "kpi": "mAP=0.5",
            }
        ).encode()
    )
    assert (line.epoch, line.max_epoch, line.step, line.max_step) == (None, None, None, 12)
    assert (line.eta_seconds, line.status, line.message) == (None, None, None)
    assert line.graphical == {"lr": 1e-4, "ok": 0.5}
    assert line.kpi == {}
    assert line.skipped == {
        "bad_count": 3,
        "bad_eta": 1,
        "bad_status": 1,
        "bad_message": 1,
        "not_finite": 2,
        "too_large": 1,
        "not_a_number": 2,
        "bad_key": 1,
        "bad_object": 1,
    }


def test_control_characters_and_lone_surrogates_never_reach_a_message_or_a_series_name() -> None:
    line = parse(b'{"message": "done\\u001b[31m\\ud800!", "graphical": {"lo\\u0000ss": 1}}')
    assert line.message == "done [31m !"
    assert list(line.graphical) == ["lo ss"]
    json.dumps(line.message).encode("utf-8")  # serialisable as UTF-8


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0:41:10", 2470.0),
        ("0:00:31.250000", 31.25),
        ("1 day, 2:00:00", 93600.0),
        ("3 days, 0:00:01.5", 259201.5),
        ("-1 day, 23:59:55", 0.0),
    ],
)
def test_an_eta_is_read_as_python_writes_a_timedelta(text: str, seconds: float) -> None:
    assert eta_seconds(text) == seconds


def test_an_eta_that_is_no_duration_is_none() -> None:
    assert eta_seconds("0:61:00") is None
    assert eta_seconds("tomorrow") is None


def test_series_past_the_limit_are_counted_not_kept() -> None:
    state = ProgressState()
    graphical = {f"metric_{n}": float(n) for n in range(MAX_SERIES + 5)}
    points, _ = state.fold(parse(json.dumps({"epoch": 1, "graphical": graphical}).encode()), now=1.0)
    assert len(points) == MAX_SERIES and len(state.series) == MAX_SERIES
    assert state.skipped == {"too_many_series": 5}


def test_the_fraction_comes_from_steps_when_given_else_from_epochs() -> None:
    assert fraction(epoch=3, max_epoch=80, step=None, max_step=None) == pytest.approx(0.0375)
    assert fraction(epoch=3, max_epoch=80, step=500, max_step=1000) == 0.5
    assert fraction(epoch=9, max_epoch=8, step=None, max_step=None) == 1.0
    assert fraction(epoch=0, max_epoch=0, step=None, max_step=0) is None


def test_the_eta_shown_counts_down_from_when_the_task_gave_it_and_is_gone_once_the_job_ended() -> None:
    progress = {"epoch": 1, "eta_seconds": 100.0, "eta_at": 1000.0, "fraction": 0.1}
    assert shown(progress, ended=False, now=1030.0)["eta_seconds"] == 70.0
    assert shown(progress, ended=False, now=2000.0)["eta_seconds"] == 0.0
    assert shown(progress, ended=True, now=1030.0)["eta_seconds"] is None
    assert "eta_at" not in shown(progress, ended=False, now=1030.0)


def test_a_line_that_says_nothing_leaves_no_progress() -> None:
    state = ProgressState()
    state.fold(parse(b'{"date": "1/2/2026", "verbosity": "INFO"}'), now=1.0)
    assert state.progress() is None

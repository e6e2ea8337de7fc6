"""A job's training as the client shows it: `tao metrics`' rows, the SDK's Metrics and sparklines."""

from __future__ import annotations

from typing import Any

from tao_client._display import job_table, sparkline
from tao_client._training import Metrics
from tao_client.cli.metrics import table


def point(epoch: int | None, step: int | None, value: float) -> dict[str, Any]:
    return {"epoch": epoch, "step": step, "value": value, "time": "2026-12-07T09:00:00Z"}


METRICS = Metrics(
    {
        "series": {
            "loss": [point(1, 100, 0.9), point(2, 200, 0.7), point(3, 300, 0.55)],
            "mAP": [point(2, 200, 0.41), point(3, 300, 0.47)],
        },
        "files": ["/workspace/results/train/status.json"],
        "skipped": {"invalid_json": 1},
        "unavailable": None,
    }
)


def test_tao_metrics_prints_a_row_per_epoch_and_a_column_per_series() -> None:
    assert table(METRICS) == [
        ("EPOCH", "STEP", "loss", "mAP"),
        ("1", "100", "0.9", ""),
        ("2", "200", "0.7", "0.41"),
        ("3", "300", "0.55", "0.47"),
    ]
    assert METRICS.latest() == {"loss": 0.55, "mAP": 0.47}


WITH_GPU = Metrics(
    {
        **METRICS.data,
        "series": {
            **METRICS.series,
            "gpu_utilization": [{**point(None, None, 90.0), "time": "2026-12-07T09:00:05Z"}, point(None, None, 30.0)],
            "gpu_memory_used": [point(None, None, 20480.0), point(None, None, 12000.0)],
        },
        "sampled": ["gpu_utilization", "gpu_memory_used"],
    }
)


def test_the_gpu_series_stay_out_of_the_epoch_rows_and_are_said_in_one_line() -> None:
    assert table(WITH_GPU) == table(METRICS)
    assert WITH_GPU.gpu_text() == "GPU 30% now (mean 60%), 12000 MiB (peak 20480 MiB)"
    assert METRICS.gpu_text() == "" and METRICS.sampled == []  # a daemon from before GPU sampling names none


def test_to_pandas_gives_a_row_per_point_with_its_time() -> None:
    frame = METRICS.to_pandas()
    assert list(frame.columns) == ["series", "epoch", "step", "value", "time"]
    assert len(frame) == 5 and str(frame["time"].dt.tz) == "UTC"
    wide = frame.pivot_table(index="epoch", columns="series", values="value")
    assert wide.loc[3, "mAP"] == 0.47


def test_a_notebook_shows_the_progress_bar_and_a_sparkline_per_series_all_escaped() -> None:
    job = {
        "id": "j1",
        "task": "t",
        "status": "running",
        "progress": {"epoch": 2, "max_epoch": 3, "fraction": 0.6667, "message": "<b>hi</b>"},
    }
    page = job_table(job, metrics=Metrics({"series": {"<i>loss</i>": [point(1, None, 0.9), point(2, None, 0.7)]}}))
    assert '<progress value="0.6667" max="1"></progress> 2/3 66%' in page
    assert "&lt;b&gt;hi&lt;/b&gt;" in page and "&lt;i&gt;loss&lt;/i&gt;" in page and "<i>" not in page
    assert page.count("<polyline") == 1


def test_a_job_that_cannot_be_followed_says_why_in_a_notebook() -> None:
    page = job_table({"id": "j1", "progress": None, "progress_unavailable": "the results dir /r is outside every mount"})
    assert "unavailable: the results dir /r is outside every mount" in page


def test_a_sparkline_spans_its_box_from_the_least_to_the_greatest_value() -> None:
    line = sparkline([1.0, 3.0, 2.0], width=100, height=40)
    assert 'points="0.0,38.0 50.0,2.0 100.0,20.0"' in line
    assert 'points="0.0,38.0"' in sparkline([5.0], width=100, height=40)  # one point, no division by zero


def test_tao_show_says_the_progress_its_message_and_kpis_or_why_there_is_none() -> None:
    from tao_client.cli.show import fields

    base: dict[str, Any] = {"id": "j1", "status": "running", "exit_code": None, "group": None, "task": "ssd", "subtask": "train", "args": [],
            "created_at": "2026-12-07T10:00:00Z", "image": "img", "envs": {}}  # fmt: skip
    progress = {
        "epoch": 12,
        "max_epoch": 80,
        "fraction": 0.15,
        "eta_seconds": None,
        "message": "Training loop in progress",
        "kpi": {"mAP": 0.5},
    }
    shown = dict(fields({**base, "progress": progress}, []))
    assert shown["progress"] == "12/80 15%\n" + " " * 11 + "Training loop in progress\n" + " " * 11 + "mAP 0.5"
    unavailable = dict(fields({**base, "progress": None, "progress_unavailable": "the results dir /r is outside every mount"}, []))
    assert unavailable["progress"] == "unavailable: the results dir /r is outside every mount"
    assert "progress" not in dict(fields({**base, "progress": None}, []))

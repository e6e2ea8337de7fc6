"""The GPU sampler (tao_server.observability.gpu_use): each pass, over NVML's stand-in, into a real job table and event files.

Real MetricStore on SQLite, real EventLog; the holders are what GpuScheduler.holders returns (a dict),
and the clock is the test's, so idleness is checked without waiting for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tao_server import db
from tao_server.jobs.events import EventLog
from tao_server.jobs.progress.metric_store import MetricStore
from tao_server.jobs.store import JobStore
from tao_server.observability.gpu_use import GpuUse, Sampling, start_sampling
from tests.fake_nvml import NVML_ERROR_LIBRARY_NOT_FOUND, FakeNvml, two_gpus

SAMPLING = Sampling(interval=5.0, idle_threshold=5.0, idle_after=600.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def metrics(tmp_path: Path) -> Iterator[MetricStore]:
    engine = db.make_engine(tmp_path / "tao.db")
    db.upgrade(engine)
    yield MetricStore(JobStore(engine))
    engine.dispose()


@pytest.fixture
def events(tmp_path: Path) -> EventLog:
    (tmp_path / "logs").mkdir()
    return EventLog(tmp_path / "logs")


def sampler(library: FakeNvml, holders: dict[str, str | None], metrics: MetricStore, events: EventLog, clock: Clock) -> GpuUse:
    # The test's clock: idleness is checked without waiting ten minutes.
    made = start_sampling(list(holders), lambda: dict(holders), metrics, events, SAMPLING, library, clock=clock)
    assert made is not None
    return made


def values(metrics: MetricStore, job_id: str) -> dict[str, list[float]]:
    return {name: [point.value for point in points] for name, points in metrics.series(job_id).items()}


def test_each_pass_records_the_holding_jobs_mean_utilisation_and_memory_in_mib(metrics: MetricStore, events: EventLog) -> None:
    library = two_gpus()
    library.gpus[0].utilization, library.gpus[0].used_mib = 90, 10000
    library.gpus[1].utilization, library.gpus[1].used_mib = 70, 6000
    holders: dict[str, str | None] = {"0": "two", "1": "two"}
    clock = Clock()
    use = sampler(library, holders, metrics, events, clock)
    use.sample()
    clock.now += 5
    library.gpus[1].utilization = 30
    use.sample()
    assert values(metrics, "two") == {"gpu_utilization": [80.0, 60.0], "gpu_memory_used": [16000.0, 16000.0]}
    times = [point.time.timestamp() for point in metrics.series("two")["gpu_utilization"]]
    assert times == [1_800_000_000.0, 1_800_000_005.0]


def test_a_free_device_is_read_for_the_exporter_but_recorded_for_no_job(metrics: MetricStore, events: EventLog) -> None:
    library = two_gpus()
    library.gpus[1].utilization = 100  # busy with something the daemon did not start
    use = sampler(library, {"0": "one", "1": None}, metrics, events, Clock())
    use.sample()
    assert [(d.device.index, d.holder, d.reading.utilization) for d in use.last()] == [("0", "one", 0.0), ("1", None, 100.0)]
    assert set(values(metrics, "one")) == {"gpu_utilization", "gpu_memory_used"}


def test_a_job_holding_an_idle_gpu_gets_a_condition_and_events_cleared_when_it_works_again(metrics: MetricStore, events: EventLog) -> None:
    library = two_gpus()
    clock = Clock()
    use = sampler(library, {"0": "lazy", "1": None}, metrics, events, clock)
    for _ in range(121):  # ten minutes of samples every 5 s at 0%
        use.sample()
        clock.now += 5
    assert use.condition("lazy") == "GPU 0 idle for 10 min"
    assert [use.device.index for use in use.last() if use.idle_seconds is not None] == ["0"]
    library.gpus[0].utilization = 95
    use.sample()
    assert use.condition("lazy") is None
    told = [(event["type"], event["data"]) for event in events.after("lazy", 0)]
    assert told == [
        ("gpu_idle", {"gpu": "0", "idle": True, "message": "GPU 0 idle for 10 min (under 5% utilisation)"}),
        ("gpu_idle", {"gpu": "0", "idle": False, "message": "GPU 0 busy again after 10 min idle"}),
    ]


def test_a_device_nvml_stops_reading_is_said_once_and_the_others_go_on(
    metrics: MetricStore, events: EventLog, caplog: pytest.LogCaptureFixture
) -> None:
    library = two_gpus()
    clock = Clock()
    use = sampler(library, {"0": "a", "1": "b"}, metrics, events, clock)
    library.gpus[0].lost = True
    with caplog.at_level(logging.INFO, logger="tao_server.observability.gpu_use"):
        use.sample()
        clock.now += 5
        use.sample()
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and warned[0].startswith(f"GPU 0 ({library.gpus[0].uuid}): NVML cannot read it: GPU is lost")
    assert values(metrics, "a") == {}
    assert len(values(metrics, "b")["gpu_utilization"]) == 2
    assert [d.device.index for d in use.last()] == ["1"]


def test_without_nvml_nothing_is_sampled_said_in_one_info_line(
    metrics: MetricStore, events: EventLog, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        made = start_sampling(["0", "1"], dict, metrics, events, SAMPLING, FakeNvml(init_error=NVML_ERROR_LIBRARY_NOT_FOUND))
    assert made is None
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "GPU use is not sampled: NVML cannot start here (NVML Shared Library Not Found)")
    ]


def test_without_gpus_nvml_is_not_even_opened(metrics: MetricStore, events: EventLog, caplog: pytest.LogCaptureFixture) -> None:
    library = two_gpus()
    with caplog.at_level(logging.DEBUG):
        assert start_sampling([], dict, metrics, events, SAMPLING, library) is None
    assert library.initialised == 0 and caplog.records == []


def test_an_inventory_nvml_names_none_of_is_not_sampled_and_nvml_is_let_go(metrics: MetricStore, events: EventLog) -> None:
    library = FakeNvml([])  # the inventory came from the setting, the devices are not there
    assert start_sampling(["0"], dict, metrics, events, SAMPLING, library) is None
    assert library.initialised == 0


def test_a_job_that_let_its_devices_go_is_done_with(metrics: MetricStore, events: EventLog) -> None:
    holders: dict[str, str | None] = {"0": "first", "1": None}
    use = sampler(two_gpus(), holders, metrics, events, Clock())
    use.sample()
    holders["0"] = "second"
    use.sample()
    assert len(values(metrics, "first")["gpu_utilization"]) == 1
    assert len(values(metrics, "second")["gpu_utilization"]) == 1
    assert ("first", "gpu_utilization") not in metrics._sizes  # its series' sizes left memory with it


def test_the_thread_samples_until_shut_down_and_lets_nvml_go(metrics: MetricStore, events: EventLog) -> None:
    library = two_gpus()
    made = start_sampling(["0"], lambda: {"0": "run"}, metrics, events, Sampling(0.5, 5.0, 600.0), library)
    assert made is not None
    made.start()
    try:
        deadline = time.monotonic() + 60  # a safety net: the first pass comes after 0.5 s
        while not metrics.series("run"):
            assert time.monotonic() < deadline, "the sampler never sampled"
            time.sleep(0.05)
    finally:
        made.shutdown()
    assert library.initialised == 0
    threads = [thread.name for thread in threading.enumerate()]
    assert "gpu-use" not in threads

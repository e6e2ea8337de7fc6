"""The Prometheus collector (tao_server.observability.exporter): what a scrape says, read back with prometheus_client's parser."""

from __future__ import annotations

import os
import pwd

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from tao_server.jobs.progress.tracker import Ratio
from tao_server.observability.exporter import DaemonState, Exporter
from tao_server.observability.gpu_use import DeviceUse
from tao_server.observability.nvml import MIB, Device, Reading

COUNTS = {"queued": 3, "pulling": 1, "running": 2, "succeeded": 40, "failed": 1}


def device_use(index: str, utilization: float, used_mib: int, holder: str | None, idle: float | None = None) -> DeviceUse:
    device = Device(index, f"GPU-{index}", f"00000000:{index}B:00.0", "NVIDIA H100 80GB HBM3", None)
    return DeviceUse(device, Reading(utilization, used_mib * MIB, 81559 * MIB), holder, idle)


def state(**changes: object) -> DaemonState:
    made = {
        "version": "0.1.0",
        "backend": "docker",
        "counts": lambda: COUNTS,
        "holders": lambda: {"0": "abc", "1": None},
        "ratios": lambda: {"abc": Ratio(owner_uid=os.getuid(), fraction=0.25), "def": Ratio(owner_uid=None, fraction=1.0)},
        "gpu_use": lambda: [device_use("0", 87.0, 12000, "abc", idle=None), device_use("1", 0.0, 0, None)],
    }
    made.update(changes)
    return DaemonState(**made)  # type: ignore[arg-type]


def scrape(exporter: Exporter, accept: str | None = None) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = exporter.render(accept)
    assert content_type.startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_jobs_by_status_name_every_status_and_the_queue_counts_the_waiting_ones() -> None:
    seen = scrape(Exporter(state()))
    statuses = {labels[0][1]: value for (name, labels), value in seen.items() if name == "tao_jobs"}
    assert statuses == {
        "queued": 3,
        "pulling": 1,
        "starting": 0,
        "running": 2,
        "succeeded": 40,
        "failed": 1,
        "cancelled": 0,
        "error": 0,
    }
    assert seen[("tao_queue_length", ())] == 4


def test_gpus_free_and_held_and_each_ones_use_where_nvml_reads_it() -> None:
    seen = scrape(Exporter(state()))
    assert seen[("tao_gpus", (("state", "free"),))] == 1
    assert seen[("tao_gpus", (("state", "held"),))] == 1
    assert seen[("tao_gpu_held", (("gpu", "0"),))] == 1 and seen[("tao_gpu_held", (("gpu", "1"),))] == 0
    assert seen[("tao_gpu_utilization_ratio", (("gpu", "0"), ("uuid", "GPU-0")))] == 0.87
    assert seen[("tao_gpu_memory_used_bytes", (("gpu", "0"), ("uuid", "GPU-0")))] == 12000 * MIB
    assert seen[("tao_gpu_memory_total_bytes", (("gpu", "1"), ("uuid", "GPU-1")))] == 81559 * MIB


def test_without_nvml_there_are_no_per_device_figures_and_nothing_fails() -> None:
    seen = scrape(Exporter(state(gpu_use=None)))
    assert not [name for name, _ in seen if name.startswith(("tao_gpu_utilization", "tao_gpu_memory", "tao_gpu_idle"))]
    assert seen[("tao_gpus", (("state", "held"),))] == 1


def test_an_idle_held_gpu_says_for_how_long() -> None:
    seen = scrape(Exporter(state(gpu_use=lambda: [device_use("0", 0.0, 100, "abc", idle=754.25)])))
    assert seen[("tao_gpu_idle_seconds", (("gpu", "0"), ("uuid", "GPU-0")))] == 754.2


def test_each_running_jobs_progress_is_labelled_with_its_id_and_its_owners_name() -> None:
    seen = scrape(Exporter(state()))
    me = pwd.getpwuid(os.getuid()).pw_name
    progress = {labels: value for (name, labels), value in seen.items() if name == "tao_job_progress_ratio"}
    assert progress == {(("job_id", "abc"), ("owner", me)): 0.25, (("job_id", "def"), ("owner", "daemon")): 1.0}


def test_an_owner_without_an_account_is_named_by_uid() -> None:
    uids = {entry.pw_uid for entry in pwd.getpwall()}
    nobody = next(uid for uid in range(60000, 70000) if uid not in uids)
    seen = scrape(Exporter(state(ratios=lambda: {"x": Ratio(nobody, 0.5)})))
    assert seen[("tao_job_progress_ratio", (("job_id", "x"), ("owner", str(nobody))))] == 0.5


def test_the_daemons_process_and_version_are_there() -> None:
    seen = scrape(Exporter(state()))
    assert seen[("tao_info", (("backend", "docker"), ("version", "0.1.0")))] == 1
    assert seen[("process_resident_memory_bytes", ())] > 0
    assert seen[("process_open_fds", ())] > 0


def test_each_scrape_reads_the_state_anew() -> None:
    counts = {"running": 1}
    exporter = Exporter(state(counts=lambda: dict(counts)))
    assert scrape(exporter)[("tao_jobs", (("status", "running"),))] == 1
    counts["running"] = 5
    assert scrape(exporter)[("tao_jobs", (("status", "running"),))] == 5


def test_openmetrics_when_the_scraper_asks_for_it() -> None:
    body, content_type = Exporter(state()).render("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    names = {family.name for family in openmetrics_families(body.decode())}
    assert {"tao_jobs", "tao_gpus", "process_cpu_seconds"} <= names

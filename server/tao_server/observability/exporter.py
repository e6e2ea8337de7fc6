"""GET /metrics: the daemon's state in Prometheus's format, written by prometheus_client from memory at each scrape.

One registry per app (never the library's global one), holding this collector and the library's
ProcessCollector (process_cpu_seconds_total, process_resident_memory_bytes, open fds, ...). A
scrape costs one count of the job table by status and reads the rest from memory: the GPU line's
holders, the progress follower's ratios, the GPU sampler's last pass. No Docker call, no file.

    tao_info{version, backend}                      1
    tao_jobs{status}                                jobs in each status, every status named
    tao_queue_length                                jobs waiting to start (queued, pulling)
    tao_gpus{state="free"|"held"}                   the daemon's GPUs
    tao_gpu_held{gpu}                               1 while a job holds the device
    tao_gpu_utilization_ratio{gpu, uuid}            0..1, where NVML is read (gpu_use.py)
    tao_gpu_memory_used_bytes{gpu, uuid}, tao_gpu_memory_total_bytes{gpu, uuid}
    tao_gpu_idle_seconds{gpu, uuid}                 how long a held device has been under the idle threshold
    tao_job_progress_ratio{job_id, owner}           0..1, running jobs whose status file gives it (bounded: running jobs only)

The job's label is `job_id`, not `job`: Prometheus gives every scraped series the `job` of its scrape
config, and would rename a `job` label of the exposition to `exported_job`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from tao_server.access.caller import user_name_of
from tao_server.jobs.progress.tracker import Ratio
from tao_server.models import JobStatus
from tao_server.observability.gpu_use import DeviceUse

WAITING = (JobStatus.queued, JobStatus.pulling)


@dataclass(frozen=True)
class DaemonState:
    """Where the collector reads the daemon from; each a cheap call (one count query, the rest memory)."""

    version: str
    backend: str
    counts: Callable[[], dict[str, int]]  # jobs by status (JobStore.counts)
    holders: Callable[[], dict[str, str | None]]  # device -> holding job (GpuScheduler.holders)
    ratios: Callable[[], dict[str, Ratio]]  # running jobs' progress (ProgressTracker.ratios)
    gpu_use: Callable[[], list[DeviceUse]] | None  # the sampler's last pass (GpuUse.last); None: no NVML


class TaoCollector:
    """A custom collector: everything is read when Prometheus scrapes, nothing is kept between scrapes."""

    def __init__(self, state: DaemonState) -> None:
        self._state = state
        self._names: dict[int, str] = {}  # uid -> account name, looked up once

    def describe(self) -> list[Metric]:
        return []  # nothing to read at registration: the names are known only at a scrape

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("tao_info", "The daemon's version and backend", labels=["version", "backend"])
        info.add_metric([self._state.version, self._state.backend], 1)
        yield info
        yield from self._jobs()
        yield from self._gpus()
        yield from self._devices()
        yield self._progress()

    def _jobs(self) -> Iterator[Metric]:
        counts = self._state.counts()
        jobs = GaugeMetricFamily("tao_jobs", "Jobs in the daemon's table, by status", labels=["status"])
        for status in JobStatus:
            jobs.add_metric([status.value], counts.get(status.value, 0))
        yield jobs
        waiting = sum(counts.get(status.value, 0) for status in WAITING)
        yield GaugeMetricFamily("tao_queue_length", "Jobs waiting to start: queued (for a worker or GPUs) or pulling", value=waiting)

    def _gpus(self) -> Iterator[Metric]:
        holders = self._state.holders()
        held = sum(1 for job in holders.values() if job is not None)
        gpus = GaugeMetricFamily("tao_gpus", "The daemon's GPUs, free or held by a job", labels=["state"])
        gpus.add_metric(["free"], len(holders) - held)
        gpus.add_metric(["held"], held)
        yield gpus
        each = GaugeMetricFamily("tao_gpu_held", "1 while a job holds the GPU", labels=["gpu"])
        for device, job in holders.items():
            each.add_metric([device], 1 if job is not None else 0)
        yield each

    def _devices(self) -> Iterator[Metric]:
        if self._state.gpu_use is None:
            return
        labels = ["gpu", "uuid"]
        utilization = GaugeMetricFamily("tao_gpu_utilization_ratio", "GPU utilisation over NVML's last sample period, 0..1", labels=labels)
        used = GaugeMetricFamily("tao_gpu_memory_used_bytes", "GPU memory used (without what the driver reserves)", labels=labels)
        total = GaugeMetricFamily("tao_gpu_memory_total_bytes", "GPU memory in all", labels=labels)
        idle = GaugeMetricFamily("tao_gpu_idle_seconds", "Seconds a held GPU has been under the idle threshold", labels=labels)
        for use in self._state.gpu_use():
            names = [use.device.index, use.device.uuid]
            utilization.add_metric(names, use.reading.utilization / 100)
            used.add_metric(names, use.reading.memory_used)
            total.add_metric(names, use.reading.memory_total)
            if use.idle_seconds is not None:
                idle.add_metric(names, round(use.idle_seconds, 1))
        yield from (utilization, used, total, idle)

    def _progress(self) -> Metric:
        progress = GaugeMetricFamily(
            "tao_job_progress_ratio", "How far each running job is, 0..1, from its status file", labels=["job_id", "owner"]
        )
        for job_id, ratio in sorted(self._state.ratios().items()):
            progress.add_metric([job_id, self._owner(ratio.owner_uid)], ratio.fraction)
        return progress

    def _owner(self, uid: int | None) -> str:
        if uid is None:
            return "daemon"
        if uid not in self._names:
            self._names[uid] = user_name_of(uid) or str(uid)
        return self._names[uid]


class Exporter:
    """The app's registry: `render` is what GET /metrics answers."""

    def __init__(self, state: DaemonState) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(TaoCollector(state))
        self.registry.register(ProcessCollector(registry=None))

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition the scraper's Accept header asks for (Prometheus's text format unless it asks for OpenMetrics)."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type

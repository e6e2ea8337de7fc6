"""GPU use per job: one thread reads every device of the inventory through NVML, every few seconds.

Each pass reads each device's utilisation and memory, and for each job holding devices (the
scheduler's `holders`, from memory) records two series of the job (jobs/progress/metric_store.py
`MetricStore.sample`): `gpu_utilization`, the mean utilisation of its devices in percent, and
`gpu_memory_used`, the memory used on them in MiB. The same readings feed the idle tracker
(idle.py: the job's condition, and a `gpu_idle` event when it begins and ends) and the Prometheus
exporter (exporter.py), which reads the last pass from memory.

Without NVML (no nvidia-ml-py, no driver, no device it can name) `start_sampling` says so in one
info line and returns None: nothing is sampled and nothing fails. A device NVML stops answering
for is said once, at warning, and skipped; a database that refuses the samples is said once,
and tried again each pass.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tao_server.errors import StorageFull
from tao_server.jobs.events import EventLog
from tao_server.jobs.progress.metric_store import GPU_MEMORY, GPU_UTILIZATION, MetricStore
from tao_server.observability.idle import IdleChange, IdleTracker
from tao_server.observability.nvml import MIB, Device, Nvml, Reading, Unreadable, open_nvml

log = logging.getLogger(__name__)

Holders = Callable[[], dict[str, str | None]]  # device -> the job holding it (GpuScheduler.holders)


@dataclass(frozen=True)
class DeviceUse:
    """A device as the last pass found it, for the exporter."""

    device: Device
    reading: Reading
    holder: str | None
    idle_seconds: float | None


@dataclass(frozen=True)
class Sampling:
    """How often to sample (seconds), and when a held device counts as idle (settings.py's gpu_* settings)."""

    interval: float
    idle_threshold: float
    idle_after: float


class GpuUse:
    def __init__(
        self,
        nvml: Nvml,
        devices: list[Device],
        holders: Holders,
        metrics: MetricStore,
        events: EventLog,
        sampling: Sampling,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._nvml = nvml
        self._devices = devices
        self._holders = holders
        self._metrics = metrics
        self._events = events
        self._interval = sampling.interval
        self._idle = IdleTracker(sampling.idle_threshold, sampling.idle_after)
        self._clock = clock
        self._last: list[DeviceUse] = []
        self._recording: set[str] = set()  # jobs whose series this sampler writes: told `done` once they let go
        self._unreadable: set[str] = set()  # devices already said to be unreadable
        self._refused = False  # the database refused the last samples: said once
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gpu-use", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def shutdown(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._interval + 5)
        self._nvml.close()

    # -- what the job service and the exporter read ---------------------------------------------------

    def condition(self, job_id: str) -> str | None:
        """ "GPU 1 idle for 12 min" while a device the job holds has idled that long; None otherwise."""
        with self._lock:
            return self._idle.condition(job_id, self._clock())

    def last(self) -> list[DeviceUse]:
        """Each device as the last pass read it (none before the first pass; an unreadable device is left out)."""
        with self._lock:
            return list(self._last)

    # -- sampling ------------------------------------------------------------------------------------

    def sample(self) -> None:
        """One pass over every device: read, record each holding job's series, note idleness."""
        now = self._clock()
        holders = self._holders()
        readings = {device.index: reading for device in self._devices if (reading := self._read(device)) is not None}
        with self._lock:
            changes = self._idle.observe(
                {device.index: (holders.get(device.index), _utilization(readings.get(device.index))) for device in self._devices}, now
            )
            self._last = [
                DeviceUse(device, readings[device.index], holders.get(device.index), self._idle.idle_seconds(device.index, now))
                for device in self._devices
                if device.index in readings
            ]
        self._record(_by_job(holders, readings), now)
        for change in changes:
            self._tell(change)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.sample()
            except Exception:  # one failed pass must not end sampling for the daemon's life
                log.exception("sampling GPU use failed")

    def _read(self, device: Device) -> Reading | None:
        try:
            reading = self._nvml.read(device)
        except Unreadable as exc:
            if device.index not in self._unreadable:
                self._unreadable.add(device.index)
                log.warning("GPU %s (%s): NVML cannot read it: %s; its use is not sampled while this lasts", device.index, device.uuid, exc)
            return None
        self._unreadable.discard(device.index)
        return reading

    def _record(self, held: dict[str, list[Reading]], now: float) -> None:
        """Each holding job's two series; the jobs that let their devices go are done with."""
        try:
            for job_id, readings in held.items():
                self._metrics.sample(job_id, GPU_UTILIZATION, round(sum(r.utilization for r in readings) / len(readings), 1), now)
                self._metrics.sample(job_id, GPU_MEMORY, round(sum(r.memory_used for r in readings) / MIB, 1), now)
        except StorageFull as exc:
            if not self._refused:
                log.warning("GPU use is not recorded while the database refuses it: %s", exc.message)
            self._refused = True
            return
        self._refused = False
        for job_id in self._recording - set(held):
            self._metrics.done(job_id)
        self._recording = set(held)

    def _tell(self, change: IdleChange) -> None:
        message = change.message(self._idle.threshold)
        # `late`: a pass that read the holders just before the job ended may tell it after its end.
        self._events.append(change.job_id, "gpu_idle", {"gpu": change.device, "idle": change.idle, "message": message}, late=True)


def start_sampling(
    inventory: list[str],
    holders: Holders,
    metrics: MetricStore,
    events: EventLog,
    sampling: Sampling,
    library: Any = None,
    visible_devices: str | None = None,
    clock: Callable[[], float] = time.time,
) -> GpuUse | None:
    """A sampler of the inventory's devices, not yet started; None (said in one info line) where NVML can name none.

    `library`: a stand-in for pynvml (tests); `visible_devices`: the daemon's own NVIDIA_VISIBLE_DEVICES (nvml.py).
    """
    if not inventory:
        return None  # no GPUs here (or a cluster's, which the daemon does not see): nothing to say
    nvml = open_nvml(library, visible_devices)
    if nvml is None:
        return None
    devices = nvml.devices(inventory)
    if not devices:
        log.info("GPU use is not sampled: NVML names none of the GPUs %s", ", ".join(inventory))
        nvml.close()
        return None
    return GpuUse(nvml, devices, holders, metrics, events, sampling, clock)


def _utilization(reading: Reading | None) -> float | None:
    return reading.utilization if reading is not None else None


def _by_job(holders: dict[str, str | None], readings: dict[str, Reading]) -> dict[str, list[Reading]]:
    held: dict[str, list[Reading]] = {}
    for device, reading in readings.items():
        if (job_id := holders.get(device)) is not None:
            held.setdefault(job_id, []).append(reading)
    return held

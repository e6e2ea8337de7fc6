"""NVML behind a small interface: the inventory's devices found by the names the daemon gives them, and each one read.

Which device is which, said explicitly: the daemon's GPU indices (jobs/gpus/devices.py, `--gpus 0,1`,
`--gpu-index 1`) are NVML's, the numbers nvidia-smi shows, which are what Docker's device
requests and NVIDIA_VISIBLE_DEVICES take. They are not CUDA's: CUDA numbers the fastest device 0
unless CUDA_DEVICE_ORDER=PCI_BUS_ID, and from 0 again within CUDA_VISIBLE_DEVICES, while NVML
reads neither variable. So an index is found with nvmlDeviceGetHandleByIndex, an inventory entry
that is a UUID (`GPU-...`, `MIG-...`) by its UUID, and one that is a PCI bus id (`00000000:1B:00.0`)
by its bus id; each device is then known by its UUID and bus id too, and the mapping is logged once.

A daemon in a container given some of the host's GPUs (NVIDIA_VISIBLE_DEVICES=2,3) sees them in
NVML as 0 and 1: its indices, which are the host's, would name the wrong devices there, so index
entries are not sampled in it (one info line says to name the devices by UUID in --gpus).

`pynvml` (nvidia-ml-py, the optional `gpu` extra) is imported only here, when the daemon starts;
tests hand `open_nvml` a stand-in module with the same functions.
"""

from __future__ import annotations

import importlib
import logging
import re
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

MIB = 1024 * 1024
_BUS_ID = re.compile(r"[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]")
_WHOLE_HOST = (None, "", "all")  # NVIDIA_VISIBLE_DEVICES values under which NVML's indices are the host's


class Unreadable(Exception):
    """NVML could not answer about a device (it fell off the bus, MIG, no permission); never leaves this package."""


@dataclass(frozen=True)
class Device:
    """One GPU of the inventory: the daemon's name for it, and NVML's."""

    index: str  # its inventory entry, as `tao info`, --gpu-index and the jobs' `gpus` name it
    uuid: str
    bus_id: str
    name: str
    handle: Any


@dataclass(frozen=True)
class Reading:
    """One look at a device: how busy it was over the driver's last sample period (percent), and its memory (bytes)."""

    utilization: float
    memory_used: int
    memory_total: int


class Nvml:
    """An initialised NVML: `devices` once at start-up, then `read` each sampling pass; `close` at shutdown."""

    def __init__(self, library: Any, visible_devices: str | None = None) -> None:
        self._library = library
        self._whole_host = visible_devices in _WHOLE_HOST
        self._visible = visible_devices

    def devices(self, inventory: list[str]) -> list[Device]:
        """The inventory's devices NVML can name; each one it cannot is said once, at info, and left out."""
        found = []
        for entry in inventory:
            try:
                handle = self._handle(entry)
                device = Device(entry, _text(self._library.nvmlDeviceGetUUID(handle)), self._bus_id(handle), self._name(handle), handle)
            except Unreadable as exc:
                log.info("GPU %s: its use is not sampled: %s", entry, exc)
                continue
            except self._library.NVMLError as exc:
                log.info("GPU %s: its use is not sampled: NVML does not know it (%s)", entry, exc)
                continue
            log.info("GPU %s is %s, %s at PCI %s: its use is sampled through NVML", entry, device.name, device.uuid, device.bus_id)
            found.append(device)
        return found

    def read(self, device: Device) -> Reading:
        """How busy the device is and how much of its memory is used, now; Unreadable when NVML cannot say."""
        try:
            rates = self._library.nvmlDeviceGetUtilizationRates(device.handle)
            memory = self._memory(device.handle)
        except self._library.NVMLError as exc:
            raise Unreadable(str(exc)) from exc
        return Reading(utilization=float(rates.gpu), memory_used=int(memory.used), memory_total=int(memory.total))

    def close(self) -> None:
        try:
            self._library.nvmlShutdown()
        except self._library.NVMLError as exc:
            log.info("NVML did not shut down cleanly: %s", exc)

    def _handle(self, entry: str) -> Any:
        if entry.startswith(("GPU-", "MIG-")):
            return self._library.nvmlDeviceGetHandleByUUID(entry)
        if _BUS_ID.fullmatch(entry):
            return self._library.nvmlDeviceGetHandleByPciBusId(entry)
        if not entry.isdigit():
            raise Unreadable(f"{entry!r} is neither an NVML index, a UUID nor a PCI bus id")
        if not self._whole_host:
            raise Unreadable(
                f"this process sees only some of the host's GPUs (NVIDIA_VISIBLE_DEVICES={self._visible}), which NVML numbers "
                "from 0, so the host's index names another device here; name the devices by UUID in --gpus (nvidia-smi -L)"
            )
        return self._library.nvmlDeviceGetHandleByIndex(int(entry))

    def _memory(self, handle: Any) -> Any:
        """The memory NVML counts as used by processes: version 2 leaves out what the driver reserves, as nvidia-smi does."""
        version = getattr(self._library, "nvmlMemory_v2", None)
        if version is not None:
            try:
                return self._library.nvmlDeviceGetMemoryInfo(handle, version=version)
            except self._library.NVMLError:
                pass  # a driver older than version 2 (R510): its used memory includes the reserved part
        return self._library.nvmlDeviceGetMemoryInfo(handle)

    def _bus_id(self, handle: Any) -> str:
        return _text(self._library.nvmlDeviceGetPciInfo(handle).busId)

    def _name(self, handle: Any) -> str:
        return _text(self._library.nvmlDeviceGetName(handle))


def open_nvml(library: Any = None, visible_devices: str | None = None) -> Nvml | None:
    """NVML, initialised; None when there is none to use (no nvidia-ml-py, no driver, no device), said in one info line.

    `library`: a module with pynvml's functions (tests); None imports pynvml.
    """
    if library is None:
        try:
            library = importlib.import_module("pynvml")
        except ImportError:
            log.info("GPU use is not sampled: nvidia-ml-py is not installed (pip install 'tao-launcher[gpu]')")
            return None
    try:
        library.nvmlInit()
    except library.NVMLError as exc:
        log.info("GPU use is not sampled: NVML cannot start here (%s)", exc)
        return None
    return Nvml(library, visible_devices)


def _text(value: str | bytes) -> str:
    """NVML's strings: pynvml gives str, older releases bytes."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value

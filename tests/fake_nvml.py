"""A stand-in for nvidia-ml-py's `pynvml`, for hosts without NVIDIA GPUs: the boundary the daemon's NVML code is tested at.

It has the functions tao_server.observability.nvml calls, with pynvml's names, arguments and error
type, over GPUs a test describes and changes (`FakeGpu`). Handles are the GPUs themselves, as
opaque to the daemon as pynvml's. Its GPUs are in NVML's order (PCI bus order): index 0 first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
nvmlMemory_v2 = 0x02000028
_TEXT = {
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
}
MIB = 1024 * 1024


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _TEXT.get(self.value, f"NVML error {self.value}")


@dataclass
class FakeGpu:
    uuid: str
    bus_id: str
    name: str = "NVIDIA H100 80GB HBM3"
    utilization: int = 0  # percent
    used_mib: int = 0  # by processes
    reserved_mib: int = 512  # by the driver: NVML's version 1 counts it as used, version 2 does not
    total_mib: int = 81559
    lost: bool = False  # fallen off the bus: every query fails


@dataclass
class FakeNvml:
    gpus: list[FakeGpu] = field(default_factory=list)
    init_error: int | None = None  # nvmlInit fails with this (no library, no driver)
    memory_v2: bool = True  # whether the driver has nvmlDeviceGetMemoryInfo_v2 (R510 on)
    initialised: int = 0
    NVMLError: type[NVMLError] = NVMLError
    nvmlMemory_v2: int = nvmlMemory_v2

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.initialised -= 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return self.gpus[index]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> FakeGpu:
        return self._find(lambda gpu: gpu.uuid == uuid)

    def nvmlDeviceGetHandleByPciBusId(self, bus_id: str) -> FakeGpu:
        return self._find(lambda gpu: gpu.bus_id.lower() == bus_id.lower())

    def nvmlDeviceGetUUID(self, handle: FakeGpu) -> str:
        return self._alive(handle).uuid

    def nvmlDeviceGetName(self, handle: FakeGpu) -> str:
        return self._alive(handle).name

    def nvmlDeviceGetPciInfo(self, handle: FakeGpu) -> SimpleNamespace:
        return SimpleNamespace(busId=self._alive(handle).bus_id)

    def nvmlDeviceGetUtilizationRates(self, handle: FakeGpu) -> SimpleNamespace:
        return SimpleNamespace(gpu=self._alive(handle).utilization, memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle: FakeGpu, version: int | None = None) -> SimpleNamespace:
        gpu = self._alive(handle)
        if version is not None and not self.memory_v2:
            raise NVMLError(NVML_ERROR_FUNCTION_NOT_FOUND)
        used = gpu.used_mib if version is not None else gpu.used_mib + gpu.reserved_mib
        return SimpleNamespace(used=used * MIB, total=gpu.total_mib * MIB, free=(gpu.total_mib - gpu.used_mib - gpu.reserved_mib) * MIB)

    def _find(self, matches: Callable[[FakeGpu], bool]) -> FakeGpu:
        for gpu in self.gpus:
            if matches(gpu):
                return gpu
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    @staticmethod
    def _alive(gpu: FakeGpu) -> FakeGpu:
        if gpu.lost:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        return gpu


def two_gpus() -> FakeNvml:
    """Two H100s as NVML numbers them: index 0 at bus 1B, index 1 at bus 3B."""
    return FakeNvml(
        [
            FakeGpu("GPU-5c0b6f0e-0000-4000-8000-000000000000", "00000000:1B:00.0"),
            FakeGpu("GPU-9d4e1a7c-1111-4111-8111-111111111111", "00000000:3B:00.0"),
        ]
    )

"""The host's GPU inventory, and what a job's GPU request resolves to on it."""

from __future__ import annotations

import glob
import re

from tao_server.errors import NoGpus


def inventory(setting: str) -> list[str]:
    """Device indices: NVML when readable, else /dev/nvidiaN; `setting` ("none", "0,1") overrides both."""
    setting = setting.strip()
    if setting == "none":
        return []
    if setting != "auto":
        return [index.strip() for index in setting.split(",") if index.strip()]
    try:
        import pynvml  # nvidia-ml-py, optional

        pynvml.nvmlInit()
        try:
            return [str(i) for i in range(pynvml.nvmlDeviceGetCount())]
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001  (no library, no driver, or no permission: fall back to device nodes)
        pass
    nodes = [path for path in glob.glob("/dev/nvidia*") if re.fullmatch(r"/dev/nvidia\d+", path)]
    return sorted((path.removeprefix("/dev/nvidia") for path in nodes), key=int)


def resolve(request: str, indices: list[str] | None, available: list[str]) -> str:
    """The job's GPU request, checked against the host: "" (none), "all", "count:N" or "ids:0,3".

    Devices are given when the job starts (scheduler.py), each to one running job at a time.
    """
    if indices:
        missing = [index for index in indices if index not in available]
        if missing:
            raise NoGpus(_no_such(missing, available), field="gpu_indices")
        return "ids:" + ",".join(dict.fromkeys(indices))
    request = request.strip().lower()
    if request in ("auto", ""):
        return "all" if available else ""
    if request in ("none", "0"):
        return ""
    if request != "all" and not re.fullmatch(r"[0-9]+", request):
        raise NoGpus(f"--gpus {request!r} is not valid; use all, none, or a count such as 2", field="gpus")
    if not available:
        raise NoGpus(
            f"this job asks for GPUs ({request}) but the daemon's host has none; "
            "run without --gpus, or start the daemon on a host with GPUs",
            field="gpus",
        )
    if request == "all":
        return "all"
    count = int(request)
    if count > len(available):
        raise NoGpus(f"this job asks for {count} GPUs but the host has {len(available)} ({', '.join(available)})", field="gpus")
    return f"count:{count}"


def _no_such(missing: list[str], available: list[str]) -> str:
    have = ", ".join(available) if available else "none"
    return f"GPU index {', '.join(missing)} does not exist on the daemon's host; its GPUs: {have}"


def resolve_count(request: str, indices: list[str] | None) -> str:
    """The job's GPU request for a backend that allocates devices itself (Slurm): "" or "count:N".

    The daemon cannot see the cluster's devices, so "auto" means none, and exact indices or "all"
    are refused: they name devices of one host.
    """
    if indices:
        raise NoGpus("--gpu-index names devices of one host; on this daemon's cluster ask for a count (--gpus 2)", field="gpu_indices")
    request = request.strip().lower()
    if request in ("auto", "", "none", "0"):
        return ""
    if not re.fullmatch(r"[0-9]+", request):
        raise NoGpus(f"--gpus {request!r}: on this daemon's cluster ask for a count of GPUs, such as 2 (or none)", field="gpus")
    return f"count:{int(request)}"

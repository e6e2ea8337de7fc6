"""/v1/tasks, /v1/info and /healthz."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter

from tao_server import __version__
from tao_server.api.deps import CallerDep, ServicesDep
from tao_server.models import TaskPublic, TasksPublic
from tao_server.runner import ENGINE_ERRORS

router = APIRouter(tags=["system"])
health = APIRouter(tags=["system"])  # answers everyone: load balancers carry no token


@health.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/v1/tasks", response_model=TasksPublic)
async def list_tasks(services: ServicesDep) -> TasksPublic:
    manifest = services.manifest
    return TasksPublic(
        manifest_source=manifest.source,
        toolkit_version=manifest.toolkit_version,
        groups=manifest.groups,
        tasks=[
            TaskPublic(group=spec.group, name=spec.name, image=spec.image.reference, subtasks=list(spec.subtasks))
            for spec in manifest.tasks.values()
        ],
    )


@router.get("/v1/info")
def info(services: ServicesDep, caller: CallerDep, verbose: bool = False) -> dict[str, Any]:
    """The daemon, its manifest, the Docker engine and the GPUs. Asks the engine: not for hot paths."""
    manifest = services.manifest
    body: dict[str, Any] = {
        "daemon": {
            "version": __version__,
            "pid": os.getpid(),
            "addresses": services.addresses,
            "data_dir": str(services.settings.data_dir),
            "started_at": services.started_at.isoformat(),
            "jobs": services.jobs.store.counts(),
        },
        "manifest": {
            "source": manifest.source,
            "format_version": manifest.format_version,
            "toolkit_version": manifest.toolkit_version,
            "groups": manifest.groups,
        },
        "gpu_mode": services.settings.gpu_mode,
        "gpus": _gpus(services, caller),
    }
    try:
        body["engine"] = services.executor.engine_info()
    except ENGINE_ERRORS as exc:
        body["engine"] = {"error": f"the Docker engine does not answer: {exc}"}
    body["images"] = [_image(services, image, verbose) for image in manifest.images()]
    return body


def _gpus(services: ServicesDep, caller: CallerDep) -> list[dict[str, Any]]:
    """Each GPU, free or held; which job holds it only for those who may see that job."""
    shown = []
    for index, holder in services.runner.gpu_holders().items():
        visible = holder is not None and (caller.admin or caller.may_see(services.jobs.store.get(holder)))
        shown.append({"index": index, "held": holder is not None, "job": holder if visible else None})
    return shown


def _image(services: ServicesDep, image: Any, verbose: bool) -> dict[str, Any]:
    tasks = sorted({spec.name for spec in services.manifest.tasks.values() if spec.image == image})
    entry: dict[str, Any] = {"reference": image.reference, "tasks": tasks}
    if verbose:
        try:
            entry["local"] = services.executor.image_summary(image.reference)  # type: ignore[attr-defined]
        except ENGINE_ERRORS:
            entry["local"] = None
    return entry

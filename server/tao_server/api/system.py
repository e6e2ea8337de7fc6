"""/v1/tasks, /v1/info, /v1/daemon and /healthz."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tao_server.api.deps import CallerDep, ServicesDep
from tao_server.api.error_responses import responses
from tao_server.api.routing import JsonRoute
from tao_server.models import TasksPublic

router = APIRouter(tags=["system"], route_class=JsonRoute)
health = APIRouter(tags=["system"])  # answers everyone: load balancers carry no token


@health.get("/healthz")
async def healthz(services: ServicesDep) -> dict[str, str]:
    """The daemon answers: "ok", or "degraded" with why while its backend is out of reach (jobs wait for it)."""
    return services.system.health()


@router.get("/v1/tasks", response_model=TasksPublic)
async def list_tasks(services: ServicesDep) -> TasksPublic:
    return services.system.tasks()


@router.get("/v1/daemon")
async def daemon(services: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    """The daemon's process, from memory (cheap: `tao` asks before its commands): version, listeners, dashboard, manifest.

    An admin's answer (the daemon's own user, root) adds its `pid`, `data_dir`, `started_by` ("tao" when
    the CLI started it), `log`, `service_manager`, and the `environment` (TAO_* variables) and `cwd` it
    started with.
    """
    return services.system.process(caller)


@router.get("/v1/info", responses=responses(422))
def info(services: ServicesDep, caller: CallerDep, verbose: bool = False) -> dict[str, Any]:
    """The daemon, its manifest, the backend and the GPUs. Asks the backend: not for hot paths.

    `daemon.jobs` counts the caller's own jobs; an admin's answer counts every job and adds the
    daemon's `pid` and `data_dir`.
    """
    return services.system.info(caller, verbose)

"""/v1/sweeps: start, list, show and stop hyperparameter sweeps (tao_server.sweeps)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from tao_server.api.deps import CallerDep, SweepServiceDep
from tao_server.api.error_responses import responses
from tao_server.api.routing import JsonRoute
from tao_server.sweeps.sweep_models import SweepCreate, SweepPublic, SweepSummary

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"], route_class=JsonRoute)


class SweepList(BaseModel):
    sweeps: list[SweepSummary]


class SweepStarted(BaseModel):
    sweep: SweepPublic
    warnings: list[str]


@router.post("", response_model=SweepStarted, status_code=status.HTTP_201_CREATED, responses=responses(403, 413, 422, 507))
def start_sweep(request: SweepCreate, sweeps: SweepServiceDep, caller: CallerDep) -> Response:
    """Check a sweep file whole (422 `invalid_workflow_file` naming its line and key, as a pipeline file's; nothing submitted) and start it.

    Its trials are jobs of the caller's, run with `launch_config` as the caller's own jobs are.
    """
    sweep, warnings = sweeps.create(request, caller)
    started = SweepStarted(sweep=sweeps.show(sweep.id, caller), warnings=warnings)
    return Response(started.model_dump_json(), status_code=status.HTTP_201_CREATED, media_type="application/json")


@router.get("", response_model=SweepList)
def list_sweeps(sweeps: SweepServiceDep, caller: CallerDep) -> Response:
    """The caller's sweeps (every sweep for an admin), newest first."""
    return Response(SweepList(sweeps=sweeps.listing(caller)).model_dump_json(), media_type="application/json")


@router.get("/{sweep_id}", response_model=SweepPublic, responses=responses(404))
def get_sweep(sweep_id: str, sweeps: SweepServiceDep, caller: CallerDep) -> Response:
    """The sweep, each trial (Optuna's state, value, parameters, job) and the best so far, with the command that runs it again."""
    return Response(sweeps.show(sweep_id, caller).model_dump_json(), media_type="application/json")


@router.post("/{sweep_id}/stop", response_model=SweepPublic, status_code=status.HTTP_202_ACCEPTED, responses=responses(404, 507))
def stop_sweep(sweep_id: str, sweeps: SweepServiceDep, caller: CallerDep) -> Response:
    """Stop a sweep: no trial starts any more; running ones get SIGTERM, then SIGKILL after the stop timeout, and are recorded failed."""
    return Response(sweeps.stop(sweep_id, caller).model_dump_json(), status_code=status.HTTP_202_ACCEPTED, media_type="application/json")

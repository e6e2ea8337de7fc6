"""/v1/pipelines: run a pipeline file as one submission, list, show and stop pipelines."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from tao_server.api.deps import CallerDep, PipelineServiceDep
from tao_server.api.error_responses import responses
from tao_server.api.jobs import json_response
from tao_server.api.routing import JsonRoute
from tao_server.workflows.pipeline_models import PipelineCreate, PipelinePage, PipelinePublic

router = APIRouter(prefix="/v1/pipelines", tags=["pipelines"], route_class=JsonRoute)


@router.post("", response_model=PipelinePublic, status_code=status.HTTP_201_CREATED, responses=responses(403, 413, 422, 507))
def run_pipeline(request: PipelineCreate, pipelines: PipelineServiceDep, caller: CallerDep) -> Response:
    """Check a pipeline file whole, then submit its steps as jobs, each after those it needs.

    A file that cannot run submits nothing: 422 `invalid_workflow_file`, the message starting
    FILE:LINE:COLUMN and `field` naming the key (`steps.prune.after`), or the refusal of a step's
    job (its task, the launcher config, the policy) with the step's name and line in its message.
    """
    pipeline = pipelines.run(request, caller)
    return json_response(pipelines.public(pipeline), status.HTTP_201_CREATED)


@router.get("", response_model=PipelinePage)
def list_pipelines(pipelines: PipelineServiceDep, caller: CallerDep) -> Response:
    """The caller's pipelines (everyone's for an admin), newest first."""
    return json_response(PipelinePage(pipelines=[pipelines.public(pipeline) for pipeline in pipelines.newest(caller)]))


@router.get("/{pipeline_id}", response_model=PipelinePublic, responses=responses(404))
def get_pipeline(pipeline_id: str, pipelines: PipelineServiceDep, caller: CallerDep) -> Response:
    return json_response(pipelines.public(pipelines.get(pipeline_id, caller)))


@router.post("/{pipeline_id}/stop", response_model=PipelinePublic, status_code=status.HTTP_202_ACCEPTED, responses=responses(404, 507))
def stop_pipeline(pipeline_id: str, pipelines: PipelineServiceDep, caller: CallerDep) -> Response:
    """Cancel every step that has not ended: waiting steps at once, running ones as `tao stop` stops a job."""
    return json_response(pipelines.public(pipelines.stop(pipeline_id, caller)), status.HTTP_202_ACCEPTED)

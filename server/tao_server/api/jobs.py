"""/v1/jobs: submit, list, inspect and cancel jobs, and read their events."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel
from pydantic_core import PydanticSerializationError

from tao_server.access.input_checks import scrubbed
from tao_server.api.deps import CallerDep, JobServiceDep
from tao_server.api.error_responses import responses
from tao_server.api.routing import JsonRoute
from tao_server.models import JobCreate, JobEvent, JobEvents, JobPage, JobPublic, JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=JsonRoute)


@router.post(
    "",
    response_model=JobPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": JobPublic, "description": "The job this `id` already names, for the same request"},
        **responses(400, 403, 409, 413, 422, 507),
    },
)
def submit_job(request: JobCreate, jobs: JobServiceDep, caller: CallerDep) -> Response:
    """Record a job and return at once; a runner starts it. Resubmitting the same `id` returns the existing job.

    Over the Unix socket, the container runs as the caller's uid:gid unless `DockerOptions.user` says otherwise.
    An argument naming a host path under a mount's source, outside every destination, is refused (422,
    `host_path_argument`, `field` `args[N]`, the container's path in the message); `warnings` in the answer
    name what the request risks, such as a results dir outside every mount.
    """
    job, created, warnings = jobs.submit(request, caller)
    shown = jobs.public(job)
    shown.warnings = warnings
    return json_response(shown, status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@router.get("", response_model=JobPage, responses=responses(422))
def list_jobs(
    jobs: JobServiceDep,
    caller: CallerDep,
    status_: Annotated[list[JobStatus] | None, Query(alias="status")] = None,
    limit: int = 50,
    cursor: str | None = None,
    container_id: str | None = None,
) -> Response:
    """The caller's jobs (every job for an admin), newest first; pass `next_cursor` back as `cursor`."""
    page, next_cursor = jobs.page(caller, status_, limit, cursor, container_id)
    return json_response(JobPage(jobs=[jobs.public(job) for job in page], next_cursor=next_cursor))


@router.get("/{job_id}", response_model=JobPublic, responses=responses(404))
def get_job(job_id: str, jobs: JobServiceDep, caller: CallerDep) -> Response:
    return json_response(jobs.public(jobs.get(job_id, caller)))


@router.get("/{job_id}/events", response_model=JobEvents, responses=responses(404, 422))
def job_events(job_id: str, jobs: JobServiceDep, caller: CallerDep, after: Annotated[int, Query(ge=0)] = 0) -> Response:
    """Events after number `after`, such as image pull progress; poll with the last `next_after`."""
    events = [JobEvent.model_validate(event) for event in jobs.events(job_id, caller, after)]
    return json_response(JobEvents(events=events, next_after=events[-1].seq if events else after))


@router.post("/{job_id}/cancel", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED, responses=responses(404, 507))
def cancel_job(job_id: str, jobs: JobServiceDep, caller: CallerDep) -> Response:
    """Cancel a job: a queued job ends at once; a running one gets SIGTERM, then SIGKILL after the stop timeout."""
    return json_response(jobs.public(jobs.cancel(job_id, caller)), status.HTTP_202_ACCEPTED)


def json_response(body: BaseModel, status_code: int = status.HTTP_200_OK) -> Response:
    # Serialised once here: returning the model would make FastAPI validate all of it a second time.
    # `response_model` above still documents the shape in the OpenAPI schema.
    try:
        content = body.model_dump_json()
    except PydanticSerializationError:
        # A row stored before text was checked at the edge may hold a lone surrogate: show it with
        # U+FFFD in its place rather than let one job break every listing that includes it.
        content = json.dumps(scrubbed(body.model_dump(mode="python")), default=str)
    return Response(content, status_code=status_code, media_type="application/json")

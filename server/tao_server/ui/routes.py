"""/ui/: the dashboard's pages, the fragments its script swaps in, its session, and its static files.

Pages are shells that hold no user data, so they need no caller; fragments and actions name
their caller as every API route does (Unix socket peer, bearer token, or the dashboard's session
cookie, api/deps.py) and call the same services, so a user sees exactly what the API shows them.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel

from tao_common.envs import masked
from tao_server.api.deps import CallerDep, JobServiceDep, PipelineServiceDep, Services, ServicesDep, on_loopback
from tao_server.api.routing import JsonRoute
from tao_server.errors import PolicyRefusal, Unauthorized
from tao_server.models import JobStatus
from tao_server.ui import pipeline_graph, views
from tao_server.ui.sign_in import COOKIE, SESSION_SECONDS

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=JsonRoute)  # a body as the API reads one
_templates = Environment(loader=PackageLoader("tao_server.ui", "templates"), autoescape=select_autoescape(default=True))
_templates.filters["size"] = views.size
LOG_WINDOW = 64 * 1024  # bytes of output a page shows at first, and adds with each "load earlier"
PAGE_SIZE = 50


def static_files() -> StaticFiles:
    return StaticFiles(directory=str(resources.files("tao_server.ui") / "static"))


def _html(template: str, **values: Any) -> HTMLResponse:
    return HTMLResponse(_templates.get_template(template).render(**values))


# -- pages --------------------------------------------------------------------------------------


@router.get("/")
def jobs_page() -> HTMLResponse:
    return _html("jobs.html", page="jobs", title="Jobs", statuses=[s.value for s in JobStatus])


@router.get("/jobs/{job_id}")
def job_page(job_id: str) -> HTMLResponse:
    return _html("job.html", page="job", title=f"Job {job_id}", job_id=job_id)


@router.get("/pipelines")
def pipelines_page() -> HTMLResponse:
    return _html("pipelines.html", page="pipelines", title="Pipelines")


@router.get("/pipelines/{pipeline_id}")
def pipeline_page(pipeline_id: str) -> HTMLResponse:
    return _html("pipeline.html", page="pipeline", title=f"Pipeline {pipeline_id}", pipeline_id=pipeline_id)


@router.get("/sweeps/{sweep_id}")
def sweep_page(sweep_id: str) -> HTMLResponse:
    """A sweep's trials, its optimisation history and its parameters in parallel coordinates (drawn from GET /v1/sweeps/{id})."""
    return _html("sweep.html", page="sweep", title=f"Sweep {sweep_id}", sweep_id=sweep_id)


@router.get("/gpus")
def gpus_page() -> HTMLResponse:
    return _html("gpus.html", page="gpus", title="GPUs and queue")


@router.get("/images")
def images_page() -> HTMLResponse:
    return _html("images.html", page="images", title="Images")


@router.get("/login")
def login_page() -> HTMLResponse:
    """Where `tao ui`'s link lands; the code is in the fragment, which the script posts once."""
    return _html("login.html", page="login", title="Signing in")


@router.get("")
def root() -> RedirectResponse:
    return RedirectResponse("/ui/")


# -- fragments ----------------------------------------------------------------------------------


@router.get("/parts/jobs")
def jobs_rows(
    jobs: JobServiceDep,
    caller: CallerDep,
    status_: Annotated[list[JobStatus] | None, Query(alias="status")] = None,
    task: str | None = None,
    owner: str | None = None,
    cursor: str | None = None,
) -> HTMLResponse:
    """One page of the jobs table (keyset: `cursor` is the API's), newest first."""
    page, next_cursor = jobs.page(caller, status_, PAGE_SIZE, cursor, None, task=task or None, owner=owner or None)
    response = _html("parts/jobs_rows.html", rows=[views.job_row(jobs.public(job)) for job in page])
    response.headers["X-Next-Cursor"] = next_cursor or ""
    return response


@router.get("/parts/job/{job_id}")
def job_detail(job_id: str, services: ServicesDep, caller: CallerDep) -> HTMLResponse:
    jobs = services.jobs
    job = jobs.public(jobs.get(job_id, caller))
    events = jobs.events(job.id, caller, 0)
    response = _html(
        "parts/job.html",
        job=job,
        row=views.job_row(job),
        events=events[-200:],
        pretty=views.pretty,
        when=views.when,
        options=views.options(job.docker_options),
        envs=masked(job.envs),
        caller=caller,
        event_clock=views.event_clock,
        event_text=views.event_text,
    )
    # A job whose notifications are still being tried stays live: its timeline shows each try as it comes.
    response.headers["X-Job-Active"] = "0" if job.status.terminal and not services.notify.pending(job.id) else "1"
    return response


@router.get("/parts/log/{job_id}")
def log_range(job_id: str, jobs: JobServiceDep, caller: CallerDep, before: Annotated[int | None, Query(ge=0)] = None) -> PlainTextResponse:
    """Up to LOG_WINDOW bytes of output ending at byte `before` (the end: the tail), and where they lie."""
    start, data = jobs.log_window(job_id, caller, before, LOG_WINDOW)
    headers = {"X-Log-Start": str(start), "X-Log-End": str(start + len(data))}
    return PlainTextResponse(data.decode("utf-8", "replace"), headers=headers)


@router.get("/parts/gpus")
def gpus_part(services: ServicesDep, caller: CallerDep) -> HTMLResponse:
    jobs = services.jobs
    queued, _ = jobs.page(caller, [JobStatus.queued, JobStatus.pulling], 500, None, None)
    shown = [jobs.public(job) for job in queued]
    # In the line's order, which fair share makes other than the order of arrival.
    shown.sort(key=lambda job: (job.gpu_queue_position or len(shown) + 1, job.created_at))
    queue = [views.job_row(job) for job in shown]
    return _html("parts/gpus.html", gpus=jobs.gpu_view(caller), queue=queue)


@router.get("/parts/pipelines")
def pipelines_part(pipelines: PipelineServiceDep, caller: CallerDep) -> HTMLResponse:
    return _html("parts/pipelines.html", pipelines=[pipelines.public(p) for p in pipelines.newest(caller)], when=views.when)


@router.get("/parts/pipeline/{pipeline_id}")
def pipeline_part(pipeline_id: str, pipelines: PipelineServiceDep, caller: CallerDep) -> HTMLResponse:
    """The pipeline's graph (steps in layers, coloured by state) and its steps' table."""
    pipeline = pipelines.public(pipelines.get(pipeline_id, caller))
    graph = pipeline_graph.layout(pipeline)
    return _html("parts/pipeline.html", pipeline=pipeline, graph=graph, width=pipeline_graph.NODE_WIDTH, height=pipeline_graph.NODE_HEIGHT)


@router.get("/parts/images")
def images_part(services: ServicesDep, caller: CallerDep) -> HTMLResponse:
    images = services.images.catalogue() if services.images is not None else []
    return _html(
        "parts/images.html", images=images, admin=caller.admin, backend=services.backend.name, has_images=services.images is not None
    )


# -- actions ------------------------------------------------------------------------------------


class Rerun(BaseModel):
    id: str


@router.post("/jobs/{job_id}/rerun", status_code=status.HTTP_201_CREATED)
def rerun(job_id: str, jobs: JobServiceDep, caller: CallerDep) -> Rerun:
    """The job's request again, as a new job of the caller's, checked as any submission is."""
    return Rerun(id=jobs.rerun(job_id, caller).id)


class LinkAnswer(BaseModel):
    url: str


@router.post("/links", status_code=status.HTTP_201_CREATED)
def new_link(request: Request, services: ServicesDep, caller: CallerDep) -> LinkAnswer:
    """A one-time link to a dashboard session as the caller: for local users, asked over the Unix socket."""
    if getattr(request.state, "peer", None) is None:
        raise PolicyRefusal("a dashboard link is made over the Unix socket, for its local caller; over TCP, open /ui/ and give your token")
    address = services.ui_address
    if address is None:
        raise PolicyRefusal(
            "this daemon serves no dashboard on loopback: it was started with --no-dashboard; "
            "restart it without, or with --port N (it listens on 127.0.0.1)"
        )
    return LinkAnswer(url=f"{address}/ui/login#{services.ui.new_link(caller)}")


class Redeem(BaseModel):
    code: str


@router.post("/session")
def open_session(body: Redeem, request: Request, services: ServicesDep) -> Response:
    """Trade a link's code, once, for the session cookie: only on loopback or the Unix socket, and only by
    the account the code was made for (the socket's peer, or the owner of the loopback connection)."""
    if getattr(request.state, "peer", None) is None and not on_loopback(request):
        raise Unauthorized("a dashboard link opens only on this machine's loopback: run `tao ui` on it", field="code")
    session = services.ui.redeem(body.code, _redeemer_uid(request, services))
    response = JSONResponse({"ok": True})
    response.set_cookie(COOKIE, session, max_age=int(SESSION_SECONDS), path="/", httponly=True, samesite="strict")
    return response


def _redeemer_uid(request: Request, services: Services) -> int | None:
    """Who redeems a code: the kernel's peer on the Unix socket; on loopback TCP, the owner of the caller's socket."""
    if (peer := getattr(request.state, "peer", None)) is not None:
        uid: int = peer[0]
        return uid
    client, server = request.scope.get("client"), request.scope.get("server")
    if client is None or server is None:
        return None
    return services.loopback_owner((client[0], client[1]), (server[0], server[1]))


@router.post("/logout")
def logout(request: Request, services: ServicesDep) -> Response:
    if (session := request.cookies.get(COOKIE)) is not None:
        services.ui.end(session)
    response = JSONResponse({"ok": True})
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response

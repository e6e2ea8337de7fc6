"""Route dependencies as Annotated aliases, so handler signatures read like prose."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.openapi.models import HTTPBearer
from fastapi.security.base import SecurityBase
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.websockets import HTTPConnection

from tao_server.access.caller import Caller, caller_from_peer
from tao_server.access.tokens import TokenStore
from tao_server.backends import Backend
from tao_server.errors import InvalidRequest, NotAllowed, Unauthorized
from tao_server.images.image_service import ImageService
from tao_server.interactive.session_registry import JobSessions
from tao_server.jobs.progress.tracker import ProgressTracker
from tao_server.jobs.runner import JobRunner
from tao_server.jobs.service import JobService
from tao_server.notify.notify_service import NotifyService
from tao_server.notify.sender import Sender
from tao_server.observability.exporter import Exporter
from tao_server.observability.gpu_use import GpuUse
from tao_server.settings import Settings
from tao_server.sweeps.driver import SweepDriver
from tao_server.sweeps.sweep_service import SweepService
from tao_server.system.system_service import SystemService
from tao_server.ui.sign_in import COOKIE, UiSessions
from tao_server.workflows.pipeline_service import PipelineService


@dataclass
class Services:
    """What the lifespan builds and the routes use; one per app, no module globals."""

    settings: Settings
    # The database, backend and runner are here for the lifespan's clean-up; routes use the services below.
    database: Engine
    backend: Backend
    runner: JobRunner
    progress: ProgressTracker
    jobs: JobService
    pipelines: PipelineService
    sweeps: SweepService
    sweep_driver: SweepDriver  # for the lifespan's clean-up
    sessions: JobSessions
    images: ImageService | None  # None: the backend keeps no images
    tokens: TokenStore
    system: SystemService
    ui: UiSessions
    notify: NotifyService
    sender: Sender  # for the lifespan's clean-up
    exporter: Exporter  # GET /metrics
    gpu_use: GpuUse | None  # for the lifespan's clean-up; None: no NVML, nothing sampled
    ui_address: str | None  # a plain HTTP listener on loopback, where `tao ui`'s links point; None: there is none
    # The uid owning the client's end of a loopback TCP connection (client, server): access/tcp_peer.py.
    loopback_owner: Callable[[tuple[str, int], tuple[str, int]], int | None]


# The dependencies below only look things up: async, so that FastAPI runs them on the event loop
# instead of sending each request through the thread pool, where a burst of submissions would
# make even /healthz queue for a thread.


async def get_services(connection: HTTPConnection) -> Services:
    services: Services = connection.app.state.services
    return services


async def get_jobs(connection: HTTPConnection) -> JobService:
    return (await get_services(connection)).jobs


async def get_pipelines(connection: HTTPConnection) -> PipelineService:
    return (await get_services(connection)).pipelines


async def get_sweeps(connection: HTTPConnection) -> SweepService:
    return (await get_services(connection)).sweeps


async def get_progress(connection: HTTPConnection) -> ProgressTracker:
    return (await get_services(connection)).progress


async def get_notify(connection: HTTPConnection) -> NotifyService:
    return (await get_services(connection)).notify


async def get_images(connection: HTTPConnection) -> ImageService:
    services = await get_services(connection)
    if services.images is None:
        raise InvalidRequest(f"the {services.backend.name} backend keeps no images; its jobs fetch their own")
    return services.images


class CallerScheme(SecurityBase):
    """Who is calling: as the kernel names them on the Unix socket (access/peer.py), else by a bearer token,
    else (a browser on loopback) by the dashboard session `tao ui` opened (ui/sign_in.py).

    A security scheme to FastAPI, so the OpenAPI document shows the bearer token on every route
    that names its caller, and only there.
    """

    def __init__(self, scraping: bool = False) -> None:
        """`scraping`: the scheme of GET /metrics, the one route a scrape token may use; every other refuses it."""
        self.scheme_name = "bearer"
        self.model = HTTPBearer(
            description="Over TCP, a token from `tao-server token create`. On the Unix socket the kernel names the caller: no token."
        )
        self._scraping = scraping

    async def __call__(self, connection: HTTPConnection) -> Caller:
        caller = await self._caller(connection)
        if caller.scrape_only and not self._scraping:
            raise NotAllowed(
                "this token is a scrape token: it reads GET /metrics and nothing else; use a token made without --scrape",
                field="authorization",
            )
        return caller

    async def _caller(self, connection: HTTPConnection) -> Caller:
        peer = getattr(connection.state, "peer", None)
        if peer is not None:
            return caller_from_peer(peer)
        if "authorization" not in connection.headers and (session := connection.cookies.get(COOKIE)) is not None:
            return await _session_caller(connection, session)
        scheme, _, token = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized(
                "this daemon needs a bearer token over TCP: set TAO_TOKEN to one that `tao-server token create` made",
                field="authorization",
            )
        services = await get_services(connection)
        caller = await run_in_threadpool(services.tokens.caller_for, token.strip())
        if caller is None:
            raise Unauthorized("the bearer token is not valid (unknown, revoked or mistyped); ask for a new one", field="authorization")
        return caller


async def _session_caller(connection: HTTPConnection, session: str) -> Caller:
    caller = (await get_services(connection)).ui.caller_for(session) if on_loopback(connection) else None
    if caller is None:
        raise Unauthorized("this dashboard session has ended or is not valid here: run `tao ui` again", field="cookie")
    return caller


def on_loopback(connection: HTTPConnection) -> bool:
    host = connection.client.host if connection.client is not None else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


get_caller = CallerScheme()
get_scraper = CallerScheme(scraping=True)


ServicesDep = Annotated[Services, Depends(get_services)]
JobServiceDep = Annotated[JobService, Depends(get_jobs)]
PipelineServiceDep = Annotated[PipelineService, Depends(get_pipelines)]
SweepServiceDep = Annotated[SweepService, Depends(get_sweeps)]
ImageServiceDep = Annotated[ImageService, Depends(get_images)]
ProgressDep = Annotated[ProgressTracker, Depends(get_progress)]
NotifyServiceDep = Annotated[NotifyService, Depends(get_notify)]
CallerDep = Annotated[Caller, Depends(get_caller)]
ScraperDep = Annotated[Caller, Depends(get_scraper)]

"""Route dependencies as Annotated aliases, so handler signatures read like prose."""

from __future__ import annotations

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
from tao_server.errors import InvalidRequest, Unauthorized
from tao_server.images.service import ImageService
from tao_server.jobs.runner import JobRunner
from tao_server.jobs.service import JobService
from tao_server.settings import Settings
from tao_server.system import SystemService


@dataclass
class Services:
    """What the lifespan builds and the routes use; one per app, no module globals."""

    settings: Settings
    # The database, backend and runner are here for the lifespan's clean-up; routes use the services below.
    database: Engine
    backend: Backend
    runner: JobRunner
    jobs: JobService
    images: ImageService | None  # None: the backend keeps no images
    tokens: TokenStore
    system: SystemService


# The dependencies below only look things up: async, so that FastAPI runs them on the event loop
# instead of sending each request through the thread pool, where a burst of submissions would
# make even /healthz queue for a thread.


async def get_services(connection: HTTPConnection) -> Services:
    services: Services = connection.app.state.services
    return services


async def get_jobs(connection: HTTPConnection) -> JobService:
    return (await get_services(connection)).jobs


async def get_images(connection: HTTPConnection) -> ImageService:
    services = await get_services(connection)
    if services.images is None:
        raise InvalidRequest(f"the {services.backend.name} backend keeps no images; its jobs fetch their own")
    return services.images


class CallerScheme(SecurityBase):
    """Who is calling: as the kernel names them on the Unix socket (access/peer.py), else by a bearer token.

    A security scheme to FastAPI, so the OpenAPI document shows the bearer token on every route
    that names its caller, and only there.
    """

    def __init__(self) -> None:
        self.scheme_name = "bearer"
        self.model = HTTPBearer(
            description="Over TCP, a token from `tao-server token create`. On the Unix socket the kernel names the caller: no token."
        )

    async def __call__(self, connection: HTTPConnection) -> Caller:
        peer = getattr(connection.state, "peer", None)
        if peer is not None:
            return caller_from_peer(peer)
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


get_caller = CallerScheme()


ServicesDep = Annotated[Services, Depends(get_services)]
JobServiceDep = Annotated[JobService, Depends(get_jobs)]
ImageServiceDep = Annotated[ImageService, Depends(get_images)]
CallerDep = Annotated[Caller, Depends(get_caller)]

"""Route dependencies as Annotated aliases, so handler signatures read like prose."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from tao_server.access import Caller, caller_from_peer
from tao_server.credentials import CredentialStore
from tao_server.errors import Unauthorized
from tao_server.events import EventLog
from tao_server.executors import Executor
from tao_server.images import ImagePuller
from tao_server.jobs import JobService
from tao_server.logs import LogStore
from tao_server.manifest import Manifest
from tao_server.runner import JobRunner
from tao_server.settings import Settings
from tao_server.tokens import TokenStore


@dataclass
class Services:
    """What the lifespan builds and the routes use; one per app, no module globals."""

    settings: Settings
    manifest: Manifest
    executor: Executor
    logs: LogStore
    runner: JobRunner
    jobs: JobService
    daemon_id: str
    started_at: datetime
    addresses: list[str]
    events: EventLog
    credentials: CredentialStore
    puller: ImagePuller
    tokens: TokenStore


def get_services(connection: HTTPConnection) -> Services:
    return connection.app.state.services


def get_jobs(request: Request) -> JobService:
    return request.app.state.services.jobs


async def get_caller(connection: HTTPConnection) -> Caller:
    """The caller: as the kernel names it on the Unix socket (peer.py), else by a bearer token."""
    peer = getattr(connection.state, "peer", None)
    if peer is not None:
        return caller_from_peer(peer)
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "this daemon needs a bearer token over TCP: set TAO_TOKEN to one that `tao-server token create` made",
            field="authorization",
        )
    caller = await run_in_threadpool(connection.app.state.services.tokens.caller_for, token.strip())
    if caller is None:
        raise Unauthorized("the bearer token is not valid (unknown, revoked or mistyped); ask for a new one", field="authorization")
    return caller


ServicesDep = Annotated[Services, Depends(get_services)]
JobServiceDep = Annotated[JobService, Depends(get_jobs)]
CallerDep = Annotated[Caller, Depends(get_caller)]

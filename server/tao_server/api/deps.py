"""Route dependencies as Annotated aliases, so handler signatures read like prose."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from tao_server.access import Caller, caller_from_peer
from tao_server.credentials import CredentialStore
from tao_server.events import EventLog
from tao_server.executors import Executor
from tao_server.images import ImagePuller
from tao_server.jobs import JobService
from tao_server.logs import LogStore
from tao_server.manifest import Manifest
from tao_server.runner import JobRunner
from tao_server.settings import Settings


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


def get_services(connection: HTTPConnection) -> Services:
    return connection.app.state.services


def get_jobs(request: Request) -> JobService:
    return request.app.state.services.jobs


def get_caller(connection: HTTPConnection) -> Caller:
    """The caller as the kernel names it on the Unix socket (SO_PEERCRED, see peer.py)."""
    return caller_from_peer(getattr(connection.state, "peer", None))


ServicesDep = Annotated[Services, Depends(get_services)]
JobServiceDep = Annotated[JobService, Depends(get_jobs)]
CallerDep = Annotated[Caller, Depends(get_caller)]

"""/v1/notify: the caller's default notification URLs (`tao notify add|list|rm`) and signing secret (`tao notify secret`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from tao_server.api.deps import CallerDep, NotifyServiceDep
from tao_server.api.error_responses import responses
from tao_server.api.routing import JsonRoute
from tao_server.notify.notify_models import NotifySecret, NotifyUrlCreate, NotifyUrlPublic, NotifyUrls

router = APIRouter(prefix="/v1/notify", tags=["notify"], route_class=JsonRoute)


@router.get("/urls", response_model=NotifyUrls)
def list_urls(notify: NotifyServiceDep, caller: CallerDep) -> NotifyUrls:
    """The URLs every new job of the caller notifies, masked."""
    return notify.urls(caller)


@router.post("/urls", response_model=NotifyUrlPublic, status_code=status.HTTP_201_CREATED, responses=responses(403, 413, 422, 507))
def add_url(request: NotifyUrlCreate, notify: NotifyServiceDep, caller: CallerDep) -> NotifyUrlPublic:
    """Add a URL every new job of the caller notifies of its start and end; checked as `--notify` is (403 `destination_refused`)."""
    return notify.add(caller, request.url)


@router.delete("/urls", response_model=NotifyUrlPublic, responses=responses(422, 507))
def remove_url(notify: NotifyServiceDep, caller: CallerDep, url: Annotated[str, Query(max_length=4096)]) -> NotifyUrlPublic:
    """Remove one of the caller's default URLs, given whole or masked as listed."""
    return notify.remove(caller, url)


@router.post("/secret", response_model=NotifySecret, responses=responses(507))
def signing_secret(notify: NotifyServiceDep, caller: CallerDep) -> NotifySecret:
    """The caller's signing secret, made on first use and kept: X-Tao-Signature-256 is the HMAC-SHA256 of each body with it."""
    return notify.secret(caller)

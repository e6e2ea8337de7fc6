"""/v1/credentials: the caller's registry logins (`tao login`). Secrets go in, never out."""

from __future__ import annotations

from fastapi import APIRouter, status
from starlette.convertors import Convertor, register_url_convertor

from tao_server.api.deps import CallerDep, ImageServiceDep
from tao_server.api.error_responses import responses
from tao_server.api.routing import JsonRoute
from tao_server.models import CredentialCreate, CredentialPublic

router = APIRouter(prefix="/v1/credentials", tags=["credentials"], route_class=JsonRoute)


class AnyText(Convertor[str]):
    """A path parameter that takes the rest of the path, whatever it holds: Starlette's `path` stops at a newline."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


# Every registry name reaches the service, which says what is wrong with it, instead of no route answering 404.
register_url_convertor("any", AnyText())


@router.get("", response_model=list[CredentialPublic], responses=responses(422))
def list_credentials(images: ImageServiceDep, caller: CallerDep) -> list[CredentialPublic]:
    """The caller's own logins: a user never sees another's, nor the daemon's shared ones."""
    return images.logins(caller)


@router.post("", response_model=CredentialPublic, status_code=status.HTTP_201_CREATED, responses=responses(400, 413, 422, 502, 503, 507))
def login(request: CredentialCreate, images: ImageServiceDep, caller: CallerDep) -> CredentialPublic:
    """Check the login with the registry, then keep it for the caller's pulls from that registry.

    The daemon's, root's and the daemon user's logins are the daemon's own: every job whose owner
    has no login for that registry pulls with them.
    """
    return images.login(caller, request.registry, request.username, request.password)


@router.delete("/{registry:any}", response_model=CredentialPublic, responses=responses(422, 507))
def logout(registry: str, images: ImageServiceDep, caller: CallerDep) -> CredentialPublic:
    """Forget the caller's login for `registry`; answers with the login forgotten."""
    return images.logout(caller, registry)

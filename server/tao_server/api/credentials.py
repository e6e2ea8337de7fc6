"""/v1/credentials: registry logins (`tao login`). Secrets go in, never out."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from tao_server.api.deps import ServicesDep
from tao_server.errors import InvalidRequest, TaoError
from tao_server.executors import StartFailure
from tao_server.models import CredentialCreate, CredentialPublic

router = APIRouter(prefix="/v1/credentials", tags=["credentials"])


class LoginRefused(TaoError):
    code = "login_refused"
    http_status = 401


@router.get("", response_model=list[CredentialPublic])
def list_credentials(services: ServicesDep) -> list[CredentialPublic]:
    return [CredentialPublic(registry=registry, username=username) for registry, username in services.credentials.registries()]


@router.post("", response_model=CredentialPublic, status_code=status.HTTP_201_CREATED)
def login(request: CredentialCreate, services: ServicesDep) -> CredentialPublic:
    """Check the login with the registry, then keep it for this daemon's pulls from that registry."""
    if not request.registry.strip() or "/" in request.registry.strip("/"):
        raise InvalidRequest(f"registry {request.registry!r} is not a registry host such as nvcr.io or 127.0.0.1:5000", field="registry")
    try:
        services.executor.login(request.registry, request.username, request.password)
    except StartFailure as failure:
        raise LoginRefused(failure.message.replace(f"refused access to {request.registry}", "refused the login"), field="password") from None
    services.credentials.save(request.registry, request.username, request.password)
    return CredentialPublic(registry=request.registry, username=request.username)


@router.delete("/{registry:path}", status_code=status.HTTP_204_NO_CONTENT)
def logout(registry: str, services: ServicesDep) -> Response:
    if not services.credentials.remove(registry):
        raise InvalidRequest(f"no stored login for {registry}", field="registry")
    return Response(status_code=status.HTTP_204_NO_CONTENT)

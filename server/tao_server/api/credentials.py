"""/v1/credentials: the caller's registry logins (`tao login`). Secrets go in, never out."""

from __future__ import annotations

from fastapi import APIRouter, status

from tao_server.api.deps import CallerDep, ServicesDep
from tao_server.credentials import describe_owner, login_owner
from tao_server.errors import InvalidRequest, TaoError
from tao_server.executors import StartFailure
from tao_server.models import CredentialCreate, CredentialPublic

router = APIRouter(prefix="/v1/credentials", tags=["credentials"])


class LoginRefused(TaoError):
    code = "login_refused"
    http_status = 401


@router.get("", response_model=list[CredentialPublic])
def list_credentials(services: ServicesDep, caller: CallerDep) -> list[CredentialPublic]:
    """The caller's own logins: a user never sees another's, nor the daemon's shared ones."""
    owner = login_owner(caller)
    return [CredentialPublic(registry=registry, username=username, owner_uid=owner) for registry, username in services.credentials.registries(owner)]


@router.post("", response_model=CredentialPublic, status_code=status.HTTP_201_CREATED)
def login(request: CredentialCreate, services: ServicesDep, caller: CallerDep) -> CredentialPublic:
    """Check the login with the registry, then keep it for the caller's pulls from that registry.

    The daemon's, root's and the daemon user's logins are the daemon's own: every job whose owner
    has no login for that registry pulls with them.
    """
    if not request.registry.strip() or "/" in request.registry.strip("/"):
        raise InvalidRequest(f"registry {request.registry!r} is not a registry host such as nvcr.io or 127.0.0.1:5000", field="registry")
    try:
        services.executor.login(request.registry, request.username, request.password)
    except StartFailure as failure:
        raise LoginRefused(failure.message.replace(f"refused access to {request.registry}", "refused the login"), field="password") from None
    owner = login_owner(caller)
    services.credentials.save(owner, request.registry, request.username, request.password)
    return CredentialPublic(registry=request.registry, username=request.username, owner_uid=owner)


@router.delete("/{registry:path}", response_model=CredentialPublic)
def logout(registry: str, services: ServicesDep, caller: CallerDep) -> CredentialPublic:
    """Forget the caller's login for `registry`; answers with the login forgotten."""
    owner = login_owner(caller)
    username = services.credentials.remove(owner, registry)
    if username is None:
        raise InvalidRequest(
            f"{describe_owner(owner)} has no stored login for {registry}; `tao login --list` shows the stored ones", field="registry"
        )
    return CredentialPublic(registry=registry, username=username, owner_uid=owner)

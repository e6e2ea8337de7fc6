"""The one place errors become HTTP responses: {"error": {"code", "message", "field"?, "source"?}}.

`responses(...)` documents them: routers and routes name the statuses they may answer, and the
descriptions and the body's schema come from here, once.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from tao_server.errors import TaoError
from tao_server.models import ErrorResponse

log = logging.getLogger(__name__)

# What each error status means here; the codes that come with it are read from tao_server/errors.py.
_MEANINGS = {
    400: "The body cannot be read at all (not UTF-8, not JSON)",
    401: "Over TCP: no bearer token, or one that is not valid; for a login: the registry refused it",
    403: "The policy does not grant the caller what the request asks for (`field` names what), or the caller may not use "
    "this route at all (/metrics: admins and scrape tokens only; a scrape token: /metrics only)",
    404: "No such job, or one the caller may not see: both answer the same",
    409: "The job id is already used by a different job",
    413: "The request body is over the daemon's size cap (TAO_MAX_REQUEST_BYTES); it was not read",
    422: "A parameter or a body field is not valid; `field` names it (and `source` the file it came from)",
    429: "The caller, or the job, has as many sessions open as the daemon allows (TAO_MAX_SESSIONS_PER_USER, _PER_JOB)",
    502: "The backend (the Docker engine) answered with a failure",
    503: "The backend (the Docker engine) does not answer at all (jobs wait for it), or the daemon is stopping",
    507: "The daemon cannot write its database or a file of its own (a full or read-only disk, a database file deleted "
    "or replaced under it); `message` names the path and what is wrong",
}


def _codes(status: int) -> list[str]:
    """The `code`s of the daemon's errors that answer with `status`."""
    found, classes = [], [TaoError]
    while classes:
        cls = classes.pop(0)
        classes += cls.__subclasses__()
        if cls.http_status == status and cls.code not in found:
            found.append(cls.code)
    return found or [_framework_code(status)]


def _framework_code(status: int) -> str:
    return HTTPStatus(status).phrase.lower().replace(" ", "_")


ERROR_RESPONSES: dict[int, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": f"{meaning}. Codes: {', '.join(f'`{code}`' for code in _codes(status))}."}
    for status, meaning in _MEANINGS.items()
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers for `statuses`, for a router's or a route's `responses=`."""
    return {status: ERROR_RESPONSES[status] for status in statuses}


def install(app: FastAPI) -> None:
    @app.exception_handler(TaoError)
    async def _tao_error(_request: Request, exc: TaoError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
        return JSONResponse(status_code=exc.http_status, content={"error": exc.to_dict()}, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":  # the body is not JSON at all: no field to name
            message = f"the request body is not valid JSON: {first.get('ctx', {}).get('error')}"
            return JSONResponse(status_code=422, content={"error": {"code": "invalid_request", "message": message}})
        location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
        field = ".".join(location) or None
        message = f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
        body = {"code": "invalid_request", "message": message}
        if field:
            body["field"] = field
        return JSONResponse(status_code=422, content={"error": body})

    @app.exception_handler(HTTPException)
    async def _framework(_request: Request, exc: HTTPException) -> JSONResponse:
        # The framework's own refusals (a body it cannot parse, an unknown path, a wrong method), in the same shape.
        body = {"code": _framework_code(exc.status_code), "message": str(exc.detail)}
        return JSONResponse(status_code=exc.status_code, content={"error": body}, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        body = {"code": "internal_error", "message": f"the daemon failed to handle this request: {exc!r}; see its log"}
        return JSONResponse(status_code=500, content={"error": body})

"""The one place errors become HTTP responses: {"error": {"code", "message", "field"?}}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from tao_server.errors import TaoError

log = logging.getLogger(__name__)


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

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        body = {"code": "internal_error", "message": f"the daemon failed to handle this request: {exc!r}; see its log"}
        return JSONResponse(status_code=500, content={"error": body})

"""/openapi.json, /docs and /redoc: the API's reference, for callers the daemon knows (as every route but /healthz).

The pages carry the document inside them, so a page fetched with a token (`curl -H "Authorization:
Bearer ..." .../docs > api.html`) shows the reference without a second request, which a browser
could not make with the token.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse

router = APIRouter(include_in_schema=False)

REDOC_JS = "https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js"
_FRAMEWORK_422 = "#/components/schemas/HTTPValidationError"


@router.get("/openapi.json")
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    app: FastAPI = request.app
    return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} API", swagger_ui_parameters={"spec": app.openapi()})


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    app: FastAPI = request.app
    return HTMLResponse(
        f"<!DOCTYPE html>\n<html><head><title>{app.title} API</title><meta charset='utf-8'/></head><body>"
        f"<div id='redoc'></div><script src='{REDOC_JS}'></script>"
        f"<script>Redoc.init({_html_safe(app.openapi())}, {{}}, document.getElementById('redoc'))</script></body></html>"
    )


def document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, made once: the routes' own, without an error answer they do not give.

    FastAPI adds its own 422 (a `detail` list) to every route with parameters that does not
    document one. The routes that can answer 422 document the daemon's (api/errors.py); where
    FastAPI's is left, the route cannot give a 422 at all, so it goes.
    """
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
    for operations in schema["paths"].values():
        for operation in operations.values():
            answers = operation["responses"]
            if answers.get("422", {}).get("content", {}).get("application/json", {}).get("schema") == {"$ref": _FRAMEWORK_422}:
                del answers["422"]
    for unused in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(unused, None)
    app.openapi_schema = schema
    return schema


def _html_safe(value: Any) -> str:
    """JSON that cannot end the <script> it sits in."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")

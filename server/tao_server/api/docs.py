"""/openapi.json, /docs and /redoc: the API's reference, for callers the daemon knows (as every route but /healthz).

Each page is whole in itself: the document, and the viewer's script and stylesheet (vendored from
npm into `viewers/`, see scripts/vendor_web.py) as data: URLs. A page fetched with a token
(`curl -H "Authorization: Bearer ..." .../docs > api.html`) then shows the reference with no second
request, which a browser could not make with the token, and on a box that reaches no CDN. Data URLs
rather than inline scripts: the bundles hold `<!--` in their regular expressions, which an HTML
parser reads inside a script element as the start of an escaped section.
"""

from __future__ import annotations

import base64
import json
from functools import cache
from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse

router = APIRouter(include_in_schema=False)

# Websockets have no operations in OpenAPI 3.1: the document's description is where callers find them.
DESCRIPTION = """\
Callers: on the Unix socket the kernel names you; over TCP send `Authorization: Bearer <token>`
(the websockets below take the same header). A user sees only their own jobs; another's answers
as a job that does not exist.

## Websockets

Binary frames carry bytes; text frames carry JSON control messages. A refused session gets
`{"type": "error", "code", "message", "field"}` and a close code: **4404** no such job (or not
yours to see), **4403** not yours (ports are for the job's owner only), **4409** the job takes
no session now (`not_attachable`: not started with `interactive`, ended, or a batch backend),
**4429** the caller or the job has as many sessions open as the daemon allows
(`too_many_sessions`: TAO_MAX_SESSIONS_PER_USER, TAO_MAX_SESSIONS_PER_JOB), **4400** a control
frame the daemon does not read (not JSON, over 4 KiB, nested more than 128 levels deep),
**4502** nothing answers on the port. A message over 2 MiB closes the websocket (1009).

### `/v1/jobs/{id}/logs`: follow a job's output
Replays from `?offset=N` and follows: output as binary frames, `{"type": "heartbeat"}` while the
job is quiet, `{"type": "end", "status", "exit_code", "error"}` when it ends, then a normal close.
When the daemon stops first, it closes with 1012: follow again from the byte you had. It reads
nothing its client sends.

### `/v1/jobs/{id}/terminal`: an interactive job's terminal
For a job submitted with `"interactive": true` (and `"tty": true` for a terminal), by its owner
or an admin. Server to client: the job's output from `?offset=N` (omitted: from now on, as
`docker attach`), heartbeats and the end message, as for the logs. Client to server: binary
frames are the task's input (keys, with Ctrl-C as byte 3: the task's terminal makes it
SIGINT); `{"type": "resize", "rows": R, "cols": C}` sets the terminal's size (SIGWINCH
inside); `{"type": "eof"}` ends the input of a job without a TTY. The input is written once
the job runs; closing the websocket detaches and the job goes on.

### `/v1/jobs/{id}/ports/{port}`: one TCP connection into a job
For the job's owner only. Each websocket is one connection to `port` on the job's own loopback,
made from inside its network namespace: nothing is published on the host. Binary frames are the
stream both ways; `{"type": "eof"}` ends one direction (a half-close); the websocket closes once
both have ended, with 1011 if the connection broke, 1001 when the job ends. `tao port-forward`
opens one per local connection.
"""

# Nothing but what the page carries: the viewers would otherwise fetch a logo or fonts from their makers' CDNs.
_OFFLINE = (
    "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; script-src data: 'unsafe-inline'; "
    "style-src data: 'unsafe-inline'; img-src data:; font-src data:; worker-src blob:; connect-src 'none'\">"
)
_FRAMEWORK_422 = "#/components/schemas/HTTPValidationError"


@router.get("/openapi.json")
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    app: FastAPI = request.app
    return HTMLResponse(
        f"<!DOCTYPE html>\n<html><head><title>{app.title} API</title><meta charset='utf-8'/>{_OFFLINE}"
        f"<link rel='stylesheet' href='{_data_url('swagger-ui.css', 'text/css')}'></head><body>"
        f"<div id='swagger-ui'></div><script src='{_data_url('swagger-ui-bundle.js', 'text/javascript')}'></script>"
        f"<script>SwaggerUIBundle({{spec: {_html_safe(app.openapi())}, dom_id: '#swagger-ui'}})</script></body></html>"
    )


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    app: FastAPI = request.app
    return HTMLResponse(
        f"<!DOCTYPE html>\n<html><head><title>{app.title} API</title><meta charset='utf-8'/>{_OFFLINE}</head><body>"
        f"<div id='redoc'></div><script src='{_data_url('redoc.standalone.js', 'text/javascript')}'></script>"
        f"<script>Redoc.init({_html_safe(app.openapi())}, {{}}, document.getElementById('redoc'))</script></body></html>"
    )


@cache
def _data_url(name: str, media_type: str) -> str:
    """A vendored viewer file as a data: URL, read once (a megabyte or two: the pages are rarely fetched)."""
    data = resources.files("tao_server.api").joinpath("viewers", name).read_bytes()
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, made once: the routes' own, without an error answer they do not give.

    FastAPI adds its own 422 (a `detail` list) to every route with parameters that does not
    document one. The routes that can answer 422 document the daemon's (api/error_responses.py); where
    FastAPI's is left, the route cannot give a 422 at all, so it goes.
    """
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, summary=app.summary, description=DESCRIPTION, routes=app.routes)
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

"""What keeps a browser from being turned against its user: a cross-site request never changes anything,
and every dashboard answer carries a Content-Security-Policy that runs no inline script.

A state change comes by POST or DELETE only (pages and fragments are GETs that change nothing).
Such a request is refused when the browser says it comes from another site (Sec-Fetch-Site), when
its Origin is not this daemon's, or when it carries the dashboard's cookie and says nothing of
where it comes from. Clients that are not browsers (`tao`, the SDK) send neither header and use
no cookie, so they pass as before. The session cookie is also SameSite=Strict: other sites'
requests do not carry it at all.
"""

from __future__ import annotations

import json

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tao_server.ui.sessions import COOKIE

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_UI_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def is_cross_site(scope: Scope) -> bool:
    """Whether a state-changing request may come from a page of another site."""
    headers = Headers(scope=scope)
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return True
    origin = headers.get("origin")
    if origin is not None:
        return origin != f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"
    return fetch_site is None and f"{COOKIE}=" in headers.get("cookie", "")


class BrowserGuard:
    """Refuses cross-site state changes on every route; adds the security headers to /ui answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS and is_cross_site(scope):
            await _refuse(send)
            return
        if not scope["path"].startswith("/ui"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_UI_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _refuse(send: Send) -> None:
    body = json.dumps(
        {
            "error": {
                "code": "cross_site_request",
                "message": "refused: this request comes from another site; the dashboard only acts on requests from its own pages",
            }
        }
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *_UI_HEADERS]
    await send({"type": "http.response.start", "status": 403, "headers": headers})
    await send({"type": "http.response.body", "body": body})

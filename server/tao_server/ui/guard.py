"""What keeps a browser from being turned against its user: a cross-site request never changes anything,
and every dashboard answer carries a Content-Security-Policy that runs no inline script.

A websocket (a job's log stream) opened from a page of another origin is refused at its
handshake. A state change comes by POST or DELETE only (pages and fragments are GETs that change nothing).
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

from tao_server.errors import CrossSiteRequest
from tao_server.ui.sign_in import COOKIE

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
    if headers.get("origin") is not None:
        return is_foreign_origin(scope)
    return fetch_site is None and f"{COOKIE}=" in headers.get("cookie", "")


def is_foreign_origin(scope: Scope) -> bool:
    """Whether the request names an Origin other than this daemon's (a websocket's scheme is ws or wss)."""
    headers = Headers(scope=scope)
    origin = headers.get("origin")
    if origin is None:
        return False
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme", "http"))
    return origin != f"{scheme}://{headers.get('host', '')}"


class BrowserGuard:
    """Refuses cross-site state changes on every route; adds the security headers to /ui answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and is_foreign_origin(scope):
            # A page of another site opening a log stream with the browser's credentials: refused at the handshake.
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})
            return
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
    refusal = CrossSiteRequest("refused: this request comes from another site; the dashboard only acts on requests from its own pages")
    body = json.dumps({"error": refusal.to_dict()}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *_UI_HEADERS]
    await send({"type": "http.response.start", "status": refusal.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

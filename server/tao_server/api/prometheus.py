"""GET /metrics: the daemon for a Prometheus server, in its text format (observability/exporter.py).

Admins may read it (root and the daemon's user on the Unix socket, admin tokens), and scrape
tokens (`tao-server token create --scrape`), which read nothing else.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from tao_server.api.deps import ScraperDep, ServicesDep
from tao_server.api.error_responses import responses
from tao_server.errors import NotAllowed

router = APIRouter(tags=["system"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={**responses(401, 403), 200: {"content": {"text/plain": {}}, "description": "Prometheus's text format"}},
)
def prometheus_metrics(request: Request, services: ServicesDep, caller: ScraperDep) -> Response:
    """Jobs by status, the queue's length, the GPUs free and held (and, where NVML is read, each one's utilisation and
    memory), each running job's progress, and the daemon's process: `tao_*` and `process_*` gauges.

    For admins and scrape tokens; the OpenMetrics format when the Accept header asks for it.
    """
    if not (caller.admin or caller.scrape_only):
        raise NotAllowed(
            "GET /metrics is for admins (root and the daemon's user on the Unix socket, admin tokens) and scrape tokens "
            "(`tao-server token create --scrape`)",
            field="authorization",
        )
    body, content_type = services.exporter.render(request.headers.get("accept"))
    return Response(body, media_type=content_type)

"""/v1/images: the manifest's images on this backend, and pulls ahead of time (`tao pull`)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from tao_server.api.deps import CallerDep, ImageServiceDep
from tao_server.api.routing import JsonRoute
from tao_server.models import ImagePublic, PullRequest

router = APIRouter(prefix="/v1/images", tags=["images"], route_class=JsonRoute)


@router.get("", response_model=list[ImagePublic])
def list_images(images: ImageServiceDep) -> list[ImagePublic]:
    """Every image the manifest uses: present on the engine or not, its size, digests and tasks."""
    return images.catalogue()


@router.post("/pull", response_class=StreamingResponse)
def pull_images(request: PullRequest, images: ImageServiceDep, caller: CallerDep) -> StreamingResponse:
    """Pull the images of `tasks` (and any `images`) with the caller's logins, streaming progress as JSON lines.

    Each line is {"type": "progress", ...}, then {"type": "done", "image", "error"} per image.
    A job that needs the same image with the same login meanwhile shares the pull.
    """
    return StreamingResponse(images.pull_lines(caller, request.tasks, request.images), media_type="application/x-ndjson")

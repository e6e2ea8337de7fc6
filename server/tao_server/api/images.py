"""/v1/images: the manifest's images on this backend, and pulls ahead of time (`tao pull`)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse

from tao_server.api.deps import CallerDep, ImageServiceDep
from tao_server.api.error_responses import responses
from tao_server.api.routing import JsonRoute
from tao_server.models import ImagePublic, PullRequest

router = APIRouter(prefix="/v1/images", tags=["images"], route_class=JsonRoute)


class JsonLines(StreamingResponse):
    """A stream of JSON documents, one a line."""

    media_type = "application/x-ndjson"


@router.get("", response_model=list[ImagePublic], responses=responses(422, 502))
def list_images(images: ImageServiceDep) -> list[ImagePublic]:
    """Every image the manifest uses: present on the engine or not, its size, digests and tasks."""
    return images.catalogue()


# The 200 is documented by hand: a response class with its own media type would lend it to the JSON errors too.
@router.post(
    "/pull",
    response_class=Response,
    responses={
        200: {"description": "Progress, one JSON document a line", "content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
        **responses(400, 403, 413, 422),
    },
)
def pull_images(request: PullRequest, images: ImageServiceDep, caller: CallerDep) -> JsonLines:
    """Pull the images of `tasks` (and any `images`) with the caller's logins, streaming progress as JSON lines.

    Each line is {"type": "progress", ...}, then {"type": "done", "image", "error"} per image: a
    pull that fails says so in its "done" line (the answer is already 200 by then). Everything is
    checked before the first line, so a refusal is an error answer. A job that needs the same
    image with the same login meanwhile shares the pull.
    """
    return JsonLines(images.pull_lines(caller, request.tasks, request.images))

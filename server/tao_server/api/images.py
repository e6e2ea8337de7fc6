"""/v1/images: the manifest's images on this engine, and pulls ahead of time (`tao pull`)."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from tao_server.api.deps import CallerDep, ServicesDep
from tao_server.credentials import login_owner
from tao_server.errors import InvalidRequest
from tao_server.executors import StartFailure
from tao_server.images import ProgressRecorder
from tao_server.models import ImagePublic, PullRequest
from tao_server.policy import PolicyRefusal
from tao_server.runner import ENGINE_ERRORS

router = APIRouter(prefix="/v1/images", tags=["images"])


@router.get("", response_model=list[ImagePublic])
def list_images(services: ServicesDep) -> list[ImagePublic]:
    """Every image the manifest uses: present on the engine or not, its size, digests and tasks."""
    manifest, executor = services.manifest, services.executor
    listed = []
    for image in manifest.images():
        tasks = sorted({spec.name for spec in manifest.tasks.values() if spec.image == image})
        try:
            local = executor.image_summary(image.reference)
        except ENGINE_ERRORS:
            local = None
        listed.append(
            ImagePublic(
                reference=image.reference,
                registry=executor.registry_of(image.reference),
                tasks=tasks,
                present=local is not None,
                size=local["size"] if local else None,
                id=local["id"] if local else None,
                digests=local["digests"] if local else [],
            )
        )
    return listed


@router.post("/pull", response_class=StreamingResponse)
def pull_images(request: PullRequest, services: ServicesDep, caller: CallerDep) -> StreamingResponse:
    """Pull the images of `tasks` (and any `images`) with the caller's logins, streaming progress as JSON lines.

    Each line is {"type": "progress", ...}, then {"type": "done", "image", "error"} per image.
    A job that needs the same image with the same login meanwhile shares the pull.
    """
    known = {image.reference for image in services.manifest.images()}
    for index, image in enumerate(request.images):
        if not caller.admin and image not in known:
            raise PolicyRefusal(
                f"images[{index}]: {image!r} is not an image of this daemon's manifest; users who are not admins may "
                "pull only those (`tao images` lists them)",
                field=f"images[{index}]",
            )
    references = [services.manifest.resolve(None, task).image.reference for task in request.tasks] + request.images
    if not references:
        raise InvalidRequest("name at least one task (or image) to pull", field="tasks")
    unique = list(dict.fromkeys(references))
    return StreamingResponse(_pull_lines(services, unique, login_owner(caller)), media_type="application/x-ndjson")


def _pull_lines(services: ServicesDep, references: list[str], owner: int | None) -> Iterator[bytes]:
    for reference in references:
        updates: queue.SimpleQueue[dict[str, object] | None] = queue.SimpleQueue()
        outcome: dict[str, str | None] = {"error": None}

        def pull(reference: str = reference) -> None:
            try:
                services.puller.pull(reference, owner, ProgressRecorder(updates.put, reference))
            except StartFailure as failure:
                outcome["error"] = failure.message
            except ENGINE_ERRORS as exc:  # e.g. a reference the engine client cannot parse
                outcome["error"] = f"cannot pull {reference}: {exc}"
            finally:
                updates.put(None)

        threading.Thread(target=pull, daemon=True).start()
        while (update := updates.get()) is not None:
            yield (json.dumps({"type": "progress", **update}) + "\n").encode()
        yield (json.dumps({"type": "done", "image": reference, "error": outcome["error"]}) + "\n").encode()

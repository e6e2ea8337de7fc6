"""/v1/jobs/{id}/logs: the job's output as text, a chunked follow stream, or a websocket.

The websocket sends output as binary frames and control messages as JSON text frames:
{"type": "heartbeat"} while the job is quiet, then {"type": "end", "status", "exit_code", "error"}.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from tao_server.api.deps import CallerDep, Services, ServicesDep
from tao_server.errors import TaoError
from tao_server.logs import READ_CHUNK, Heartbeat
from tao_server.models import Job

router = APIRouter(prefix="/v1/jobs", tags=["logs"])

MAX_OFFSET = 2**62  # past any log, and still a file position seek() accepts
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="byte offset to start from")]


@router.get("/{job_id}/logs", response_class=StreamingResponse)
def get_logs(job_id: str, services: ServicesDep, caller: CallerDep, offset: Offset = 0, follow: bool = False) -> StreamingResponse:
    """The job's output from `offset`; with `follow`, the stream stays open until the job ends."""
    services.jobs.get(job_id, caller)  # 404 for an unknown job, or another user's
    media_type = "text/plain; charset=utf-8"
    if follow:
        return StreamingResponse(_followed_bytes(services, job_id, offset), media_type=media_type)
    return StreamingResponse(_file_bytes(services, job_id, offset), media_type=media_type)


@router.websocket("/{job_id}/logs")
async def follow_logs(websocket: WebSocket, job_id: str, caller: CallerDep, offset: Offset = 0) -> None:
    services: Services = websocket.app.state.services
    await websocket.accept()
    # Primary-key reads on a WAL database take well under a millisecond: done on the loop, they
    # spare each follower a worker thread (50 followers would otherwise grow the pool to its cap).
    try:
        services.jobs.get(job_id, caller)
    except TaoError as exc:
        await websocket.send_text(json.dumps({"type": "error", **exc.to_dict()}))
        await websocket.close(code=4404)
        return
    heartbeat = {"type": "heartbeat"}
    try:
        async for item in services.logs.follow(job_id, offset, lambda: services.runner.is_finished(job_id), services.settings.heartbeat_interval):
            if isinstance(item, Heartbeat):
                await websocket.send_text(json.dumps(heartbeat))
            else:
                await websocket.send_bytes(item)
        await websocket.send_text(json.dumps(_end_message(services.jobs.get(job_id))))
        await websocket.close()
    except WebSocketDisconnect:
        return


def _end_message(job: Job) -> dict[str, object]:
    return {"type": "end", "status": job.status.value, "exit_code": job.exit_code, "error": job.error}


def _file_bytes(services: Services, job_id: str, offset: int) -> Iterator[bytes]:
    path = services.logs.path(job_id)
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            while chunk := f.read(READ_CHUNK):
                yield chunk
    except FileNotFoundError:
        return


async def _followed_bytes(services: Services, job_id: str, offset: int) -> AsyncIterator[bytes]:
    async for item in services.logs.follow(job_id, offset, lambda: services.runner.is_finished(job_id), heartbeat=None):
        if not isinstance(item, Heartbeat):
            yield item

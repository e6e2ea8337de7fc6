"""/v1/jobs/{id}/logs: the job's output as text, a chunked follow stream, or a websocket.

The websocket sends output as binary frames and control messages as JSON text frames:
{"type": "heartbeat"} while the job is quiet, then {"type": "end", "status", "exit_code", "error"}.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from tao_server.api.deps import CallerDep, JobServiceDep, ServicesDep
from tao_server.api.routing import JsonRoute
from tao_server.errors import TaoError
from tao_server.jobs.logs import Heartbeat
from tao_server.models import Job

router = APIRouter(prefix="/v1/jobs", tags=["logs"], route_class=JsonRoute)

MAX_OFFSET = 2**62  # past any log, and still a file position seek() accepts
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="byte offset to start from")]
MEDIA_TYPE = "text/plain; charset=utf-8"


@router.get("/{job_id}/logs", response_class=StreamingResponse)
def get_logs(job_id: str, jobs: JobServiceDep, caller: CallerDep, offset: Offset = 0, follow: bool = False) -> StreamingResponse:
    """The job's output from `offset`; with `follow`, the stream stays open until the job ends."""
    if follow:
        return StreamingResponse(_without_heartbeats(jobs.follow_log(job_id, caller, offset, heartbeat=None)), media_type=MEDIA_TYPE)
    return StreamingResponse(jobs.read_log(job_id, caller, offset), media_type=MEDIA_TYPE)


@router.websocket("/{job_id}/logs")
async def follow_logs(websocket: WebSocket, job_id: str, services: ServicesDep, caller: CallerDep, offset: Offset = 0) -> None:
    jobs = services.jobs
    await websocket.accept()
    # Primary-key reads on a WAL database take well under a millisecond: done on the loop, they
    # spare each follower a worker thread (50 followers would otherwise grow the pool to its cap).
    try:
        stream = jobs.follow_log(job_id, caller, offset, services.settings.heartbeat_interval)
    except TaoError as exc:
        await websocket.send_text(json.dumps({"type": "error", **exc.to_dict()}))
        await websocket.close(code=4404)
        return
    heartbeat = json.dumps({"type": "heartbeat"})
    try:
        async for item in stream:
            if isinstance(item, Heartbeat):
                await websocket.send_text(heartbeat)
            else:
                await websocket.send_bytes(item)
        await websocket.send_text(json.dumps(_end_message(jobs.get(job_id, caller))))
        await websocket.close()
    except WebSocketDisconnect:
        return


def _end_message(job: Job) -> dict[str, object]:
    return {"type": "end", "status": job.status.value, "exit_code": job.exit_code, "error": job.error}


async def _without_heartbeats(items: AsyncIterator[bytes | Heartbeat]) -> AsyncIterator[bytes]:
    async for item in items:
        if not isinstance(item, Heartbeat):
            yield item

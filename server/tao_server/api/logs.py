"""/v1/jobs/{id}/logs: the job's output as text, a chunked follow stream, or a websocket.

The websocket sends output as binary frames and control messages as JSON text frames:
{"type": "heartbeat"} while the job is quiet, then {"type": "end", "status", "exit_code", "error"}.
When the daemon stops first, the websocket closes with 1012 and a follow stream just ends.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from tao_server.api.deps import CallerDep, JobServiceDep, ServicesDep
from tao_server.api.error_responses import responses
from tao_server.api.routing import JsonRoute
from tao_server.errors import DaemonStopping, TaoError
from tao_server.interactive.channel import SERVICE_RESTART
from tao_server.jobs.log_files import Heartbeat
from tao_server.models import Job

router = APIRouter(prefix="/v1/jobs", tags=["logs"], route_class=JsonRoute)

MAX_OFFSET = 2**62  # past any log, and below 2**63, where a file position overflows (jobs/log_files.py reads past the end as nothing)
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="byte offset to start from; past the end: no bytes")]
Tail = Annotated[
    int | None, Query(ge=1, le=MAX_OFFSET, description="only the last this many bytes (then `offset` is not used): `tao show`'s last lines")
]

Attempt = Annotated[int | None, Query(ge=1, le=1000, description="one attempt's output alone (from 1), of a job run again after a failure")]


class LogText(StreamingResponse):
    """A job's output as it was written: text, in whatever bytes the task printed."""

    media_type = "text/plain"  # Starlette adds "; charset=utf-8"


# The 200 is documented by hand: a response class with its own media type would lend it to the JSON errors too.
@router.get(
    "/{job_id}/logs",
    response_class=Response,
    responses={200: {"description": "The output", "content": {"text/plain": {"schema": {"type": "string"}}}}, **responses(404, 422)},
)
def get_logs(
    job_id: str,
    jobs: JobServiceDep,
    caller: CallerDep,
    offset: Offset = 0,
    follow: bool = False,
    tail: Tail = None,
    attempt: Attempt = None,
) -> LogText:
    """The job's output from byte `offset` (with `tail`: its last `tail` bytes); with `follow`, the stream stays open until the job ends.

    With `attempt` (from 1; a job run again by `--retries` has several), that attempt's output alone:
    `offset` and `tail` count within it.

    The same path is a websocket (`ws://`, and the same token over TCP). It replays from `offset`
    and follows: the output as binary frames, the text frame `{"type": "heartbeat"}` while the
    job is quiet, and when the job ends the text frame
    `{"type": "end", "status", "exit_code", "error"}`, then a normal close. For a job the caller
    may not see: `{"type": "error", "code", "message", "field"}`, and close code 4404.
    """
    if attempt is not None:
        start, end = jobs.attempt_span(jobs.get(job_id, caller), attempt)
        if tail is not None:
            offset = max(0, (end if end is not None else jobs.size_of_log(job_id, caller)) - start - tail)
        if follow:
            return LogText(_without_heartbeats(jobs.follow_log(job_id, caller, start + offset, heartbeat=None)))
        return LogText(jobs.read_log(job_id, caller, offset, attempt))
    if tail is not None:
        offset = max(0, jobs.size_of_log(job_id, caller) - tail)
    if follow:
        return LogText(_without_heartbeats(jobs.follow_log(job_id, caller, offset, heartbeat=None)))
    return LogText(jobs.read_log(job_id, caller, offset))


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
        await websocket.send_text(json.dumps(end_message(jobs.get(job_id, caller))))
        await websocket.close()
    except DaemonStopping:
        await websocket.close(code=SERVICE_RESTART)
    except WebSocketDisconnect:
        return


def end_message(job: Job) -> dict[str, object]:
    return {"type": "end", "status": job.status.value, "exit_code": job.exit_code, "error": job.error}


async def _without_heartbeats(items: AsyncIterator[bytes | Heartbeat]) -> AsyncIterator[bytes]:
    """The output alone; it ends early when the daemon stops, and `tao` follows again from where it was."""
    try:
        async for item in items:
            if not isinstance(item, Heartbeat):
                yield item
    except DaemonStopping:
        return

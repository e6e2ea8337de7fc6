"""The JSON body of a notification: the job as it started or ended, and one line of `text` that Slack,
Mattermost and Teams incoming webhooks show as they are.

    {"event": "job.ended", "delivery": "4f0c...", "time": "2026-12-08T10:15:02Z",
     "job_id": "k3m9x2ab", "owner": "alice", "owner_uid": 1001, "task": "detectnet_v2", "subtask": "train",
     "status": "failed", "exit_code": 1, "error": null, "duration_seconds": 754.2,
     "progress": {...} or null, "kpi": {"mAP": 0.71} or null,
     "url": "https://tao.example:8443/ui/jobs/k3m9x2ab" or null,
     "text": "tao job k3m9x2ab (detectnet_v2 train) of alice failed with exit code 1 after 12:34 https://..."}
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from tao_server.access.caller import user_name_of
from tao_server.models import JobPublic, JobStatus
from tao_server.notify.notify_models import STARTED


def body(event: str, delivery: str, job: JobPublic, link: str | None, now: datetime) -> bytes:
    """The notification of `event` for `job`, as the bytes sent and signed."""
    progress = _progress(job)
    owner = user_name_of(job.owner_uid) if job.owner_uid is not None else None
    fields: dict[str, Any] = {
        "event": event,
        "delivery": delivery,
        "time": _utc(now),
        "job_id": job.id,
        "owner": owner,
        "owner_uid": job.owner_uid,
        "task": job.task,
        "subtask": job.subtask,
        "status": job.status.value,
        "exit_code": job.exit_code,
        "error": job.error,
        "duration_seconds": duration(job, now) if event != STARTED else None,
        "progress": progress,
        "kpi": (progress or {}).get("kpi"),
        "url": link,
        # A job run again after a failure (--retries) tells of each attempt's start; its end is its last attempt's.
        "attempt": job.attempt,
        "pipeline_id": job.pipeline_id,
        "step": job.step,
    }
    fields["text"] = text(event, job, owner, fields["duration_seconds"], link)
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()


def text(event: str, job: JobPublic, owner: str | None, seconds: float | None, link: str | None) -> str:
    """One line a person reads in a chat channel."""
    what = " ".join(part for part in (job.task, job.subtask) if part)
    if job.pipeline_id is not None:
        what += f", step {job.step} of pipeline {job.pipeline_id}"
    if job.attempt > 1:
        what += f", attempt {job.attempt}"
    whose = f" of {owner}" if owner else ""
    if event == STARTED:
        line = f"tao job {job.id} ({what}){whose} started"
    else:
        line = f"tao job {job.id} ({what}){whose} {_ending(job)}"
        if seconds is not None:
            line += f" after {_clock(seconds)}"
    if job.error and event != STARTED:
        line += f": {job.error}"
    return f"{line} {link}" if link else line


def _ending(job: JobPublic) -> str:
    if job.status == JobStatus.failed and job.exit_code is not None:
        return f"failed with exit code {job.exit_code}"
    return job.status.value


def duration(job: JobPublic, now: datetime) -> float | None:
    """Seconds from its start to its end (to now, when it has not ended); None for a job that never started."""
    if job.started_at is None:
        return None
    end = job.finished_at or now
    return round(max(0.0, (_aware(end) - _aware(job.started_at)).total_seconds()), 3)


def _progress(job: JobPublic) -> dict[str, Any] | None:
    """The job's training progress where its view has one (issue 23's `progress`), as JSON; else None."""
    progress = getattr(job, "progress", None)
    if progress is None:
        return None
    if hasattr(progress, "model_dump"):
        dumped: dict[str, Any] = progress.model_dump(mode="json")
        return dumped
    return dict(progress) if isinstance(progress, dict) else None


def _clock(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _utc(value: datetime) -> str:
    return _aware(value).astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

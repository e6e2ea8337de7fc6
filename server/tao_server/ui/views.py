"""What the pages show of a job, a GPU or an image: plain values a template prints (and escapes)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from tao_common.progress import progress_text
from tao_server.access.caller import user_name_of
from tao_server.models import JobPublic


def owner(uid: int | None) -> str:
    if uid is None:
        return "the daemon"
    name = user_name_of(uid)
    return f"{name} ({uid})" if name else str(uid)


def status_text(job: JobPublic) -> str:
    """The status, with the job's place in the GPU line or why it does not advance."""
    notes = []  # in one parenthesis, as `tao list` writes them
    if job.expected_start is not None and not job.status.terminal:
        notes.append(f"expected to start {when(job.expected_start)}")
    if job.attempt > 1:
        notes.append(f"attempt {job.attempt}")
    if job.gpu_queue_position is not None:
        why = f": {job.gpu_wait.message}" if job.gpu_wait is not None else ""
        notes.append(f"GPU line #{job.gpu_queue_position}{why}")
    text = job.status.value + (f" ({'; '.join(notes)})" if notes else "")
    if job.condition:
        text += f": {job.condition}"
    return text


def duration(job: JobPublic, now: datetime | None = None) -> str:
    if job.started_at is None:
        return ""
    end = _aware(job.finished_at) if job.finished_at is not None else (now or datetime.now(UTC))
    seconds = max(0, int((end - _aware(job.started_at)).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def when(value: datetime | None) -> str:
    return _aware(value).strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else ""


def job_row(job: JobPublic) -> dict[str, Any]:
    progress = job.progress
    return {
        # The training's progress bar (None: no status file, or none read yet) and its words, as `tao list` writes them.
        "fraction": progress.fraction if progress is not None else None,
        "progress": progress_text(progress.model_dump()) if progress is not None else ("n/a" if job.progress_unavailable else ""),
        "id": job.id,
        "task": f"{job.task} {job.subtask}" if job.subtask else job.task,
        "part_of": part_of(job),
        "command_line": command_line(job),
        "owner": owner(job.owner_uid),
        "status": job.status.value,
        "status_text": status_text(job),
        "gpus": ",".join(job.gpus) or asked_gpus(job.gpu_request),
        "image": job.image,
        "created": when(job.created_at),
        "duration": duration(job),
        "exit_code": "" if job.exit_code is None else str(job.exit_code),
    }


def part_of(job: JobPublic) -> tuple[str, str] | None:
    """What the job is a part of, as `tao list` says it, and the page that shows the whole; None for a job of its own."""
    if job.pipeline_id:
        return f"pipeline {job.pipeline_id}: {job.step}", f"/ui/pipelines/{job.pipeline_id}"
    if job.sweep_id:
        return f"sweep {job.sweep_id} #{job.trial}", f"/ui/sweeps/{job.sweep_id}"
    return None


def command_line(job: JobPublic) -> str:
    """The `tao` command that submits the job again, quoted as a shell takes it back: a line to copy."""
    import shlex

    return shlex.join(["tao", *(part for part in (job.group, job.task, job.subtask) if part), *job.args])


def size(count: int | None) -> str:
    """An image's size as `docker images` writes it (1000s): 812 kB, 1.99 MB, 14.2 GB."""
    if count is None:
        return ""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            value = count / scale
            return f"{value:.{2 if value < 10 else 1 if value < 100 else 0}f} {unit}"
    return f"{count} B"


def options(docker_options: dict[str, Any]) -> dict[str, Any]:
    """Docker options to show: sizes in the units `docker run --shm-size` reads them in (1024s)."""
    return {
        name: binary_size(value) if name in _SIZE_OPTIONS and isinstance(value, int) else value for name, value in docker_options.items()
    }


def binary_size(count: int) -> str:
    """64 MiB, 16 GiB, 1.5 GiB: as the launcher config writes sizes (64M, 16G)."""
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= scale:
            return f"{count / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{count} B"


_SIZE_OPTIONS = ("shm_size", "mem_limit")


def asked_gpus(request: str) -> str:
    """What a job without devices yet asked for: "asks 2", "asks 0,3", "asks all"; "" for none."""
    return f"asks {request.partition(':')[2] or request}" if request else ""


def pretty(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def event_clock(seconds: float) -> str:
    """An event's time in the timeline: HH:MM:SS, UTC."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%H:%M:%S")


def event_text(event: dict[str, Any]) -> str:
    """An event as the timeline writes it: a notification's try, a status file's message and an idle GPU in words, anything else as its JSON."""
    data = event["data"]
    if event["type"] == "status":  # a new status or message in the task's status file
        return " ".join(str(part) for part in (data.get("status"), data.get("message")) if part)
    if event["type"] == "gpu_idle":  # a GPU the job holds idle for long, or busy again after it
        return str(data.get("message", ""))
    if event["type"] != "notify":
        return pretty(data)
    text = f"{data.get('event', '')} to {data.get('url', '')}: try {data.get('try', '?')} {data.get('outcome', '')}"
    if data.get("message"):
        text += f" ({data['message']})"
    if data.get("next_try_at"):
        text += f"; next try at {data['next_try_at']}"
    return text


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value

"""Per-job event files: what happened to a job beside its output, such as image pull progress.

One JSON object a line in `logs/JOB.events`, numbered from 1; readers ask for the events after
the last number they saw, so a dashboard can poll and a late reader can replay. Types: `pull`
(progress), `gpus` (the devices given), `image` (the image the job started from: id, digests),
`time_limit`, `status` (a status file's message), `gpu_idle` (a held GPU idle for long, or busy
again after it: tao_server.observability).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from tao_server.backends import ImageStore
from tao_server.errors import BackendError

log = logging.getLogger(__name__)


class EventLog:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._next: dict[str, int] = {}

    def path(self, job_id: str) -> Path:
        return self.root / f"{job_id}.events"

    def append(self, job_id: str, kind: str, data: dict[str, Any], late: bool = False) -> None:
        """Add an event; one the disk cannot take is lost with a warning (events are a courtesy, output is not).

        `late`: it may come after the job's end (`forget`), so its number is kept only if one already is.
        """
        with self._lock:
            kept = job_id in self._next
            seq = self._next.get(job_id) or self._count(job_id) + 1
            line = json.dumps({"seq": seq, "time": round(time.time(), 3), "type": kind, "data": data})
            try:
                with open(self.path(job_id), "a") as file:
                    file.write(line + "\n")
            except OSError as exc:
                log.warning("job %s: an event is lost, %s cannot be written: %s", job_id, self.path(job_id), exc.strerror)
                return
            if kept or not late:
                self._next[job_id] = seq + 1

    def after(self, job_id: str, seq: int, limit: int = 1000) -> list[dict[str, Any]]:
        try:
            with open(self.path(job_id)) as file:
                lines = file.readlines()
        except FileNotFoundError:
            return []
        return [event for line in lines[seq : seq + limit] if (event := _parsed(line)) is not None]

    def forget(self, job_id: str) -> None:
        """The job has ended: its counter need not stay in memory."""
        with self._lock:
            self._next.pop(job_id, None)

    def _count(self, job_id: str) -> int:
        try:
            with open(self.path(job_id)) as file:
                return sum(1 for _ in file)
        except FileNotFoundError:
            return 0


def _parsed(line: str) -> dict[str, Any] | None:
    """An event line; None for one a full disk cut short."""
    try:
        event: dict[str, Any] = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event


def record_image(events: EventLog, images: ImageStore | None, job_id: str, image: str) -> None:
    """An `image` event: the id and digests of the image the job started from, which a later pull may change."""
    try:
        summary = images.summary(image) if images is not None else None
    except BackendError as exc:
        log.info("job %s: its image %s could not be described: %s", job_id, image, exc.message)
        return
    if summary is not None:
        events.append(job_id, "image", {"reference": image, "id": summary.id, "digests": summary.digests}, late=True)

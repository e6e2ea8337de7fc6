"""Per-job event files: what happened to a job beside its output, such as image pull progress.

One JSON object a line in `logs/JOB.events`, numbered from 1; readers ask for the events after
the last number they saw, so a dashboard can poll and a late reader can replay.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any


class EventLog:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._next: dict[str, int] = {}

    def path(self, job_id: str) -> Path:
        return self.root / f"{job_id}.events"

    def append(self, job_id: str, kind: str, data: dict[str, Any]) -> None:
        with self._lock:
            seq = self._next.get(job_id) or self._count(job_id) + 1
            self._next[job_id] = seq + 1
            line = json.dumps({"seq": seq, "time": round(time.time(), 3), "type": kind, "data": data})
            with open(self.path(job_id), "a") as file:
                file.write(line + "\n")

    def after(self, job_id: str, seq: int, limit: int = 1000) -> list[dict[str, Any]]:
        try:
            with open(self.path(job_id)) as file:
                lines = file.readlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines[seq : seq + limit]]

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

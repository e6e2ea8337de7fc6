"""A pipeline's own end: once its last step has ended, one `pipeline.ended` notification for the whole flow.

An end listener of the runner (JobRunner.on_end): a step that ends looks at its pipeline, and
when every step the file wrote has ended, its outcome (as `tao pipeline show` gives it) goes to the
URLs its steps notify, through the same outbox as each step's own notifications. A listener may
be called more than once for an end, and two steps may end together: the outbox keeps one
delivery per pipeline and URL, so the message is sent once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol

from tao_server.jobs.store import JobStore
from tao_server.workflows.pipeline_service import PipelineService
from tao_server.workflows.pipeline_store import PipelineStore

ENDED_STATUSES = ("succeeded", "failed", "cancelled")


class PipelineNotifier(Protocol):
    def pipeline_ended(self, pipeline: dict[str, Any], owner_uid: int, urls: list[str], link: str | None) -> None: ...


class PipelineEnds:
    def __init__(self, pipelines: PipelineService, store: JobStore, notifier: PipelineNotifier, link: Callable[[str], str | None]) -> None:
        self._pipelines = pipelines
        self._store = store
        self._pipeline_store = PipelineStore(store)
        self._notifier = notifier
        self._link = link

    def step_ended(self, job_id: str) -> None:
        """A job ended: when it was a pipeline's last step to end, tell of the pipeline's end."""
        job = self._store.find(job_id)
        if job is None or job.pipeline_id is None:
            return
        pipeline = self._pipeline_store.find(job.pipeline_id)
        if pipeline is None:
            return
        shown = self._pipelines.public(pipeline)
        if shown.status not in ENDED_STATUSES or len(shown.steps) < len(pipeline.steps):
            return  # still running, or still being submitted
        steps = self._store.of_pipeline(pipeline.id)
        urls = list(dict.fromkeys(url for step in steps for url in step.notify_urls))
        owner = pipeline.owner_uid if pipeline.owner_uid is not None else os.getuid()  # a pipeline of the daemon's own user
        self._notifier.pipeline_ended(
            shown.model_dump(mode="json") | {"created_at": pipeline.created_at}, owner, urls, self._link(pipeline.id)
        )

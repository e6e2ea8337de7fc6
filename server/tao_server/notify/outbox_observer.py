"""The runner's observer for notifications: a job that starts or ends puts one delivery per URL it notifies in the outbox.

Called in the job's own worker thread, once the start or end is recorded; it writes the outbox and
wakes the sender, and sends nothing itself, so a receiver never holds up a job.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from tao_server.errors import StorageFull
from tao_server.models import Job, JobPublic, utcnow
from tao_server.notify import payload
from tao_server.notify.notify_models import ENDED, PIPELINE_ENDED, STARTED, Delivery
from tao_server.notify.outbox import Outbox
from tao_server.notify.sender import Sender
from tao_server.notify.urls import masked

log = logging.getLogger(__name__)


class JobNotifier:
    """`job_started` and `job_ended`, as jobs/runner/observer.py's JobObserver; `link(job_id)` is its dashboard page, when there is one."""

    def __init__(self, outbox: Outbox, sender: Sender, link: Callable[[str], str | None], owner_uid: Callable[[Job], int]) -> None:
        self._outbox = outbox
        self._sender = sender
        self._link = link
        self._owner_uid = owner_uid

    def job_started(self, job: Job) -> None:
        self._tell(STARTED, job)

    def job_ended(self, job: Job) -> None:
        self._tell(ENDED, job)

    def pipeline_ended(self, pipeline: dict[str, Any], owner_uid: int, urls: list[str], link: str | None) -> None:
        """A pipeline's last step ended: one `pipeline.ended` per URL, keyed by the pipeline's id (told twice, sent once)."""
        now = utcnow()
        self._keep(
            pipeline["id"],
            PIPELINE_ENDED,
            urls,
            lambda delivery_id, url: Delivery(
                id=delivery_id, job_id=pipeline["id"], event=PIPELINE_ENDED, owner_uid=owner_uid, url=url,
                body=payload.pipeline_body(delivery_id, pipeline, link, now).decode(), created_at=time.time(), next_try_at=time.time(),
            ),
        )  # fmt: skip

    def _tell(self, event: str, job: Job) -> None:
        shown = JobPublic.model_validate(job)
        now = utcnow()
        self._keep(
            job.id,
            event,
            job.notify_urls,
            lambda delivery_id, url: Delivery(
                id=delivery_id, job_id=job.id, attempt=getattr(job, "attempt", None) or 1, event=event, owner_uid=self._owner_uid(job),
                url=url, body=payload.body(event, delivery_id, shown, self._link(job.id), now).decode(), created_at=time.time(),
                next_try_at=time.time(),
            ),
        )  # fmt: skip

    def _keep(self, about: str, event: str, urls: list[str], delivery: Callable[[str, str], Delivery]) -> None:
        """Put one delivery per URL (made by `delivery(delivery_id, url)`) in the outbox and wake the sender; a full disk loses them, saying so."""
        if not urls:
            return
        deliveries = [delivery(uuid.uuid4().hex, url) for url in urls]
        try:
            added = self._outbox.add(deliveries)
        except StorageFull as exc:
            log.error("%s: its %s notification to %s is lost: %s", about, event, ", ".join(masked(url) for url in urls), exc.message)
            return
        if added:
            self._sender.wake()

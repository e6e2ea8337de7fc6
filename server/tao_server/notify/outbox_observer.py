"""The runner's observer for notifications: a job that starts or ends puts one delivery per URL it notifies in the outbox.

Called in the job's own worker thread, once the start or end is recorded; it writes the outbox and
wakes the sender, and sends nothing itself, so a receiver never holds up a job.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from tao_server.errors import StorageFull
from tao_server.models import Job, JobPublic, utcnow
from tao_server.notify import payload
from tao_server.notify.notify_models import ENDED, STARTED, Delivery
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

    def _tell(self, event: str, job: Job) -> None:
        if not job.notify_urls:
            return
        shown = JobPublic.model_validate(job)
        now = utcnow()
        deliveries = []
        for url in job.notify_urls:
            delivery_id = uuid.uuid4().hex
            deliveries.append(
                Delivery(
                    id=delivery_id,
                    job_id=job.id,
                    attempt=getattr(job, "attempt", None) or 1,
                    event=event,
                    owner_uid=self._owner_uid(job),
                    url=url,
                    body=payload.body(event, delivery_id, shown, self._link(job.id), now).decode(),
                    created_at=time.time(),
                    next_try_at=time.time(),
                )
            )
        try:
            added = self._outbox.add(deliveries)
        except StorageFull as exc:
            shown_urls = ", ".join(masked(url) for url in job.notify_urls)
            log.error("job %s: its %s notification to %s is lost: %s", job.id, event, shown_urls, exc.message)
            return
        if added:
            self._sender.wake()

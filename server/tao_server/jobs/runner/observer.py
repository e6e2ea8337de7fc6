"""What the runner tells of each job beyond its row: that it started, and that it ended.

The runner calls its observer once the start (status `running`) or the end is recorded, with the
job as it now is, in the thread that recorded it. An observer must return promptly and never
decide how a job goes: notifications (tao_server.notify) put deliveries in an outbox and send
them from threads of their own.
"""

from __future__ import annotations

from typing import Protocol

from tao_server.models import Job


class JobObserver(Protocol):
    def job_started(self, job: Job) -> None: ...

    def job_ended(self, job: Job) -> None: ...


class NoObserver:
    """The observer of a runner nobody watches."""

    def job_started(self, job: Job) -> None:
        pass

    def job_ended(self, job: Job) -> None:
        pass

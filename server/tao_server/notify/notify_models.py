"""The notification tables (the outbox, each user's default URLs and signing secret) and the API's views of them.

The API never returns a row: URLs are shown masked (urls.py), and a secret only to its owner.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

STARTED = "job.started"
ENDED = "job.ended"
PIPELINE_ENDED = "pipeline.ended"  # a pipeline's last step ended: one message for the whole flow
EVENTS = (STARTED, ENDED)


class DeliveryState:
    pending = "pending"  # due now or at next_try_at
    delivered = "delivered"  # the receiver answered 2xx
    failed = "failed"  # given up: refused, a permanent answer, or 24 hours of failed tries


class Delivery(SQLModel, table=True):
    """One notification to one URL, kept until it is delivered or given up: the outbox.

    At most one per job, attempt, event and URL, so an end told twice is sent once. `body` is the
    exact JSON sent (and signed) on every try. Nothing past the insert knows what it tells: a
    pipeline's own notification (`pipeline.ended`) is a row with its event, URL and body, and the
    pipeline's id where `job_id` is.
    """

    __tablename__ = "notify_delivery"
    __table_args__ = (
        UniqueConstraint("job_id", "attempt", "event", "url", name="uq_notify_delivery_once"),
        Index("ix_notify_delivery_due", "state", "next_try_at"),
    )

    id: str = Field(primary_key=True, max_length=32)
    job_id: str | None = Field(default=None, max_length=64)
    attempt: int = 1  # the job's attempt, where a job may run again (retries): each attempt's start and end are told
    event: str
    owner_uid: int  # whose secret signs it
    url: str
    body: str
    state: str = DeliveryState.pending
    tries: int = 0
    created_at: float  # seconds since the epoch: tries stop a retry window after this
    next_try_at: float
    last_try_at: float | None = None
    last_result: str | None = None


class DefaultUrl(SQLModel, table=True):
    """A URL every new job of its owner notifies (`tao notify add`)."""

    __tablename__ = "notify_default"

    owner_uid: int = Field(primary_key=True)
    url: str = Field(primary_key=True)
    created_at: float


class Secret(SQLModel, table=True):
    """A user's signing secret, made once (`tao notify secret`, or their first delivery)."""

    __tablename__ = "notify_secret"

    owner_uid: int = Field(primary_key=True)
    secret: str
    created_at: float


class NotifyUrlCreate(BaseModel):
    """Body of `POST /v1/notify/urls`."""

    model_config = ConfigDict(extra="forbid")

    url: str = PydanticField(description="an http:// or https:// URL, such as a Slack, Mattermost or Teams incoming webhook")


class NotifyUrlPublic(BaseModel):
    url: str = PydanticField(description="the URL with its credentials masked (password, query values, path tokens)")


class NotifyUrls(BaseModel):
    urls: list[NotifyUrlPublic]


class NotifySecret(BaseModel):
    secret: str = PydanticField(description="the caller's signing secret: the key of X-Tao-Signature-256 (HMAC-SHA256 of the body)")

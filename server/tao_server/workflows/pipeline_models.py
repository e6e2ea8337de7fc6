"""The API's pipeline schemas: `PipelineCreate` (the body of POST /v1/pipelines) and `PipelinePublic`.

The client sends the pipeline file's text, not its parsed content: the daemon reads it
(pipeline_file.py), so the CLI, the SDK and any REST caller get the same checks, and every error
names the file's line and column as the user wrote them. `tao` needs no YAML parser.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_serializer
from pydantic import Field as PydanticField

from tao_server.models import JobStatus, PullPolicy, _utc_text
from tao_server.workflows.yaml_nodes import MAX_TEXT

PipelineStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class PipelineCreate(BaseModel):
    """Body of `POST /v1/pipelines`: the file's text, its name for messages, and the caller's launcher config."""

    model_config = ConfigDict(extra="forbid")

    text: str = PydanticField(max_length=MAX_TEXT, description="the pipeline file (YAML), as written")
    source: str = PydanticField(default="pipeline.yaml", max_length=4096, description="the file's name, for messages")
    launch_config: Any = None
    launch_config_source: str | None = None
    notify: list[str] = PydanticField(default_factory=list, description="URLs told of every step's start and end")
    pull: PullPolicy | None = None


class PipelineStepPublic(BaseModel):
    """One step: its job, and how it stands."""

    name: str
    job_id: str
    status: JobStatus
    exit_code: int | None
    error: str | None
    attempt: int
    after: list[str] = PydanticField(description="the steps it comes after")
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None

    @field_serializer("started_at", "finished_at")
    def _as_utc(self, value: datetime | None) -> str | None:
        return _utc_text(value)


class PipelinePublic(BaseModel):
    """A pipeline as the API shows it: its steps in the order its file wrote them."""

    id: str
    source: str
    owner_uid: int | None
    status: PipelineStatus
    exit_code: int | None = PydanticField(description="0 when every step succeeded; else the first failed step's; null until then")
    created_at: datetime
    steps: list[PipelineStepPublic]

    @field_serializer("created_at")
    def _as_utc(self, value: datetime) -> str | None:
        return _utc_text(value)


class PipelinePage(BaseModel):
    pipelines: list[PipelinePublic]

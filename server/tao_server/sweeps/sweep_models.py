"""The sweep table and the API's sweep schemas.

A sweep's row holds what it was asked to do (its validated file, `spec`), whose it is, the
launcher config its trials run with, and its state. Its trials are Optuna's, kept in the study's
own journal file in the daemon's data dir (study.py); each trial's job is an ordinary job row
with `sweep_id` and `trial` set.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, field_serializer
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from tao_server.models import utcnow


class SweepState(StrEnum):
    running = "running"
    completed = "completed"  # every trial ended (complete, pruned or failed), or the GPU-hours budget is spent
    stopped = "stopped"  # `tao sweep stop`: its running trials were stopped

    @property
    def active(self) -> bool:
        return self is SweepState.running


class Sweep(SQLModel, table=True):
    __tablename__ = "sweep"

    id: str = Field(primary_key=True, max_length=64)
    owner_uid: int | None = None
    owner_gid: int | None = None
    state: SweepState = Field(default=SweepState.running, index=True)
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    source: str | None = None  # the sweep file's name, as the caller gave it
    launch_config: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    launch_config_source: str | None = None
    message: str | None = None  # why it ended, when not every trial ran ("the GPU-hours budget of 10 is spent")
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class SweepCreate(BaseModel):
    """Body of `POST /v1/sweeps`: the sweep file's text (YAML or JSON) and its name, and the caller's launcher config."""

    model_config = ConfigDict(extra="forbid")

    file: str = PydanticField(max_length=1_000_000, description="the sweep file's text: YAML (JSON is YAML too)")
    source: str | None = PydanticField(default=None, max_length=4096, description="the file's name, for messages")
    launch_config: Any = None
    launch_config_source: str | None = None


class TrialPublic(BaseModel):
    number: int
    state: str = PydanticField(description="Optuna's state, lower case: complete, pruned, fail, running, waiting")
    value: float | None = None
    params: dict[str, Any]
    job: str | None = PydanticField(default=None, description="the trial's job id")
    epochs: int = PydanticField(default=0, description="the epochs whose KPI was reported to the pruner")
    intermediate: dict[int, float] = PydanticField(default_factory=dict, description="the KPI at each epoch reported")
    error: str | None = PydanticField(default=None, description="why a failed trial failed")


class BestTrial(BaseModel):
    number: int
    value: float
    params: dict[str, Any]
    command: str = PydanticField(description="the `tao` command line that runs the best trial again")


class SweepPublic(BaseModel):
    id: str
    state: SweepState
    source: str | None
    kpi: str
    direction: str
    trials_asked: int = PydanticField(description="how many trials the sweep runs at most (`trials`)")
    parallel: int
    message: str | None
    gpu_seconds: float = PydanticField(description="what its trials' jobs have held so far, in GPU-seconds")
    created_at: datetime
    finished_at: datetime | None
    trials: list[TrialPublic]
    best: BestTrial | None

    @field_serializer("created_at", "finished_at")
    def _as_utc(self, value: datetime | None) -> str | None:
        from tao_server.models import _utc_text

        return _utc_text(value)


class SweepSummary(BaseModel):
    id: str
    state: SweepState
    source: str | None
    kpi: str
    trials_asked: int
    created_at: datetime

    @field_serializer("created_at")
    def _as_utc(self, value: datetime) -> str | None:
        from tao_server.models import _utc_text

        return _utc_text(value)

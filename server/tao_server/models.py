"""The job table and the API schemas built around it.

The API never returns a table row: `JobBase` holds the fields a job's row (`Job`) and its API
view (`JobPublic`) share; `JobCreate` is the request body. `ErrorResponse` is the body of every
error answer. A job's training progress is on its row (`Job.progress`, shown as `JobProgress`);
its metric series are rows of `job_metric` (`MetricRow`, shown as `JobMetrics`), and where the
follower of its status file has got to is `job_progress` (`ProgressCursor`). A job that waits for
others has a row of `job_dependency` per job it waits for (`JobDependency`); the steps of a pipeline
file are jobs tagged with its id and their step's name, and the pipeline itself is a `pipeline` row
(`Pipeline`, shown as `PipelinePublic`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_serializer
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


class JobStatus(StrEnum):
    queued = "queued"
    pulling = "pulling"
    starting = "starting"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    error = "error"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled, JobStatus.error})
ACTIVE_STATUSES = frozenset(set(JobStatus) - TERMINAL_STATUSES)

MAX_RETRIES = 20
JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

PullPolicy = Literal["missing", "always", "never"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobBase(SQLModel):
    """The fields a job's row and its API view share."""

    id: str = Field(unique=True, index=True, max_length=64)
    group: str | None = None
    task: str
    subtask: str | None = None
    args: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    command: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    image: str
    # The backend's name for the job's run (a container id); named for what `tao stop --container_id` takes.
    container_id: str | None = Field(default=None, index=True)
    status: JobStatus = Field(default=JobStatus.queued)
    exit_code: int | None = None
    error: str | None = None
    mounts: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    envs: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    docker_options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # What the job asked for ("", "all", "count:N", "ids:0,3"); `gpus` are the devices it was given.
    gpu_request: str = Field(default="")
    gpus: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    pull_policy: str = Field(default="missing")
    # Where a backend that places jobs itself (Slurm) puts it: nodes (None: one), and a time limit in seconds (None: none).
    nodes: int | None = None
    time_limit: int | None = None
    # Who submitted it: the kernel's account on the Unix socket, a token's over TCP; None: the daemon.
    owner_uid: int | None = None
    owner_gid: int | None = None
    # Its standard input stays open for a terminal (`tao -i`): the terminal websocket writes to it.
    interactive: bool = False
    # The task's status file as the container sees it (`tao --status-file`); None: found from its results dir.
    status_file: str | None = None
    # A sweep's trial (tao_server.sweeps): the sweep's id and the trial's number; None for a job of its own.
    sweep_id: str | None = Field(default=None, index=True, max_length=64)
    trial: int | None = None
    cancel_requested: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # The pipeline it is a step of, and that step's name; None: a job submitted on its own.
    pipeline_id: str | None = Field(default=None, index=True, max_length=64)
    step: str | None = Field(default=None, max_length=64)
    # Runs after a non-zero exit (not a cancel, a time limit or a launch failure): `retries` more at most; `attempt` counts from 1.
    retries: int = 0
    attempt: int = 1


class Job(JobBase, table=True):
    """One task run. `seq` orders jobs and makes pages cheap; `id` is what people type."""

    __tablename__ = "job"
    __table_args__ = (Index("ix_job_status_seq", "status", "seq"),)

    seq: int | None = Field(default=None, primary_key=True)
    # GPUs the owner's jobs may hold at once, from the policy when it was submitted; None: no cap.
    gpu_cap: int | None = None
    # The owner's weight in fair share, from the policy when it was submitted; None: 1 (a row from before shares).
    gpu_shares: float | None = None
    # The URLs told of its start and end (tao_server.notify), checked at submission; shown masked (JobPublic.notify).
    notify_urls: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    # Its training progress as its status file tells it (jobs/progress/tracker.py): JobProgress's fields; None: none read.
    progress: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # Why its progress cannot be followed (no status file the daemon can see); None: it can, or the job has none.
    progress_unavailable: str | None = None
    # Where each attempt's output starts in the job's one log file (byte offsets; the first is 0).
    attempt_offsets: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))


class DependencyKind(StrEnum):
    ok = "ok"  # `--after`: the dependency must succeed
    any = "any"  # `--after-any`: whatever its end


class JobDependency(SQLModel, table=True):
    """An edge: `job_id` starts only once `after_id` has ended (and succeeded, for `ok`)."""

    __tablename__ = "job_dependency"

    job_id: str = Field(primary_key=True, max_length=64)
    after_id: str = Field(primary_key=True, max_length=64, index=True)
    kind: DependencyKind = Field(default=DependencyKind.ok, max_length=8)


class Pipeline(SQLModel, table=True):
    """A pipeline file submitted as one: its steps are jobs tagged with its id (`Job.pipeline_id`)."""

    __tablename__ = "pipeline"

    id: str = Field(primary_key=True, max_length=64)
    owner_uid: int | None = None
    owner_gid: int | None = None
    # The file it came from, as the client named it; its steps' names in the order written.
    source: str = ""
    steps: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class JobCreate(BaseModel):
    """Body of `POST /v1/jobs`.

    `launch_config` is the user's `~/.tao_mounts.json` as parsed JSON; the daemon validates it and
    names `launch_config_source` in every error so the user knows which file to fix.
    """

    model_config = ConfigDict(extra="forbid")

    id: str | None = PydanticField(default=None, pattern=JOB_ID_PATTERN)
    group: str | None = None
    task: str
    subtask: str | None = None
    args: list[str] = PydanticField(default_factory=list)
    launch_config: Any = None
    launch_config_source: str | None = None
    # "auto" (all GPUs if the host has any), "none", "all", a count ("2"), or indices via gpu_indices.
    gpus: str = "auto"
    gpu_indices: list[str] | None = None
    # For a backend that places jobs itself (Slurm): nodes, and a time limit in Slurm's forms ("2:00:00", "1-12").
    nodes: int | None = PydanticField(default=None, ge=1)
    time: str | None = None
    # "missing" pulls an absent image, "always" pulls before each run, "never" only uses local images.
    # None takes the daemon's policy.
    pull: PullPolicy | None = None
    # `docker run -i`: keep the task's standard input open, for the terminal websocket to write to.
    interactive: bool = False
    # `docker run -t`: the task runs on a terminal (its output is then one stream, as a terminal shows it).
    tty: bool = False
    # URLs to tell of the job's start and end (`--notify`), beside the caller's defaults (`tao notify add`).
    notify: list[str] = PydanticField(default_factory=list)
    # The task's status file (TAO's status.json) as the container sees it, when its results dir does not say.
    status_file: str | None = PydanticField(default=None, max_length=4096)
    # Jobs that must succeed first (`--after`), and jobs that must end first, however they end (`--after-any`).
    after: list[str] = PydanticField(default_factory=list, max_length=64)
    after_any: list[str] = PydanticField(default_factory=list, max_length=64)
    # Runs again after a non-zero exit, up to this many more times (`--retries`).
    retries: int = PydanticField(default=0, ge=0, le=MAX_RETRIES)


class GpuWait(BaseModel):
    """Why a job waits in the GPU line (jobs/gpus/gpu_line.py), in words and in the numbers behind them."""

    reason: Literal["devices", "behind", "image", "cap"] = PydanticField(
        description="devices: first in line, too few GPUs free; behind: another job goes first (fair share, or it came first); "
        "image: its image is being pulled, it keeps its place; cap: its owner holds as many GPUs as the policy lets them"
    )
    message: str = PydanticField(description='"needs 4 GPUs, 1 free; reserved from 12:03:20Z", "behind a job of bob", ...')
    needs: int
    free: int
    behind: str | None = PydanticField(
        default=None, description="the job it waits behind: its id when it is the same owner's, else whose it is (a job of NAME)"
    )
    reserved_from: datetime | None = PydanticField(
        default=None, description="first in line under backfill: its GPUs are free by then at the latest (when known)"
    )

    @field_serializer("reserved_from")
    def _as_utc(self, value: datetime | None) -> str | None:
        return _utc_text(value)


class JobProgress(BaseModel):
    """A job's training progress, from the last lines of its status file; each field null where they say nothing."""

    epoch: int | None = None
    max_epoch: int | None = None
    step: int | None = None
    max_step: int | None = None
    fraction: float | None = PydanticField(default=None, ge=0, le=1, description="0..1: from steps when given, else epochs")
    eta_seconds: float | None = PydanticField(
        default=None, description="the task's last estimate, less the time since it gave it; null once the job has ended"
    )
    status: str | None = PydanticField(default=None, description="STARTED, RUNNING, SUCCESS, FAILURE or SKIPPED, as the task wrote it")
    message: str | None = None
    kpi: dict[str, float] | None = PydanticField(default=None, description="the latest value of each numeric KPI")
    updated_at: datetime | None = PydanticField(default=None, description="when the daemon read the last line that said something")

    @field_serializer("updated_at")
    def _as_utc(self, value: datetime | None) -> str | None:
        return _utc_text(value)


class JobPublic(JobBase):
    """A job as the API shows it."""

    # For a queued job waiting for GPUs: its place in line (1 = next).
    gpu_queue_position: int | None = None
    # For a job in the GPU line: why it waits there.
    gpu_wait: GpuWait | None = None
    # Why an active job does not advance now, such as "backend unreachable since ...": it goes on once that clears.
    condition: str | None = None
    # Only in the answer to its submission: what the request risks, such as a results dir outside every mount.
    warnings: list[str] = []
    # The URLs told of its start and end, their credentials masked.
    notify: list[str] = []
    # Its training progress, from TAO's status file in its results dir; null: no status file (yet).
    progress: JobProgress | None = None
    # Why progress cannot be followed for it, such as a results dir outside every mount; null when it can.
    progress_unavailable: str | None = None
    # The jobs it waits for: `after` must succeed, `after_any` only end.
    after: list[str] = []
    after_any: list[str] = []
    # For a GPU job waiting in line: when it is expected to start (the backfill plan's reservation, or Slurm's estimate).
    expected_start: datetime | None = None

    @field_serializer("created_at", "started_at", "finished_at", "expected_start")
    def _as_utc(self, value: datetime | None) -> str | None:
        return _utc_text(value)


def _utc_text(value: datetime | None) -> str | None:
    """A time as the API writes it: ISO 8601 in UTC, with a Z (SQLite gives times back without their zone: UTC)."""
    if value is None:
        return None
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat().replace("+00:00", "Z")


class MetricPoint(BaseModel):
    """One value of a series, with the epoch and step it belongs to (null where the task said none)."""

    epoch: int | None
    step: int | None
    value: float
    time: datetime = PydanticField(description="when the daemon read it")

    @field_serializer("time")
    def _as_utc(self, value: datetime) -> str | None:
        return _utc_text(value)


class JobMetrics(BaseModel):
    """A job's metric series, named by key (`loss`, `mAP`, ...), each in the order the task wrote it."""

    series: dict[str, list[MetricPoint]]
    files: list[str] = PydanticField(description="the status files followed, as the container sees them")
    skipped: dict[str, int] = PydanticField(
        description="what was left out of them, by reason: invalid_json, line_too_long, not_finite, unsafe_file, ..."
    )
    unavailable: str | None = PydanticField(default=None, description="why progress cannot be followed; null when it can")
    sampled: list[str] = PydanticField(
        default_factory=list,
        description="the series sampled over time rather than read from the status file (GPU use: gpu_utilization, "
        "gpu_memory_used); their points have no epoch or step, only the time of the sample",
    )


class ProgressCursor(SQLModel, table=True):
    """How far the daemon has read a job's status files, and what it must remember between lines (jobs/progress/tracker.py)."""

    __tablename__ = "job_progress"

    job_id: str = Field(primary_key=True, max_length=64)
    state: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class MetricRow(SQLModel, table=True):
    """One point of a job's series. One per (series, epoch, step): a later value replaces an earlier one.

    -1 stands for an epoch or step the task did not give (NULLs are never equal in a unique index).
    """

    __tablename__ = "job_metric"
    __table_args__ = (UniqueConstraint("job_id", "series", "epoch", "step", name="uq_job_metric_point"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(max_length=64)
    series: str = Field(max_length=64)
    epoch: int = -1
    step: int = -1
    value: float
    time: float  # seconds since the epoch: when the daemon read it


class JobPage(BaseModel):
    jobs: list[JobPublic]
    next_cursor: str | None


class TaskPublic(BaseModel):
    group: str | None
    name: str
    image: str
    subtasks: list[str]


class TasksPublic(BaseModel):
    manifest_source: str
    toolkit_version: str | None
    # Whether this daemon's jobs may be interactive (a terminal, ports reached): `tao` on a terminal asks for one only then.
    interactive: bool = False
    groups: list[str]
    tasks: list[TaskPublic]


class JobEvent(BaseModel):
    """Something that happened to a job before or beside its output, such as image pull progress."""

    seq: int
    time: float
    type: str
    data: dict[str, Any]


class JobEvents(BaseModel):
    events: list[JobEvent]
    next_after: int


class ImagePublic(BaseModel):
    reference: str
    registry: str
    tasks: list[str]
    present: bool
    size: int | None = None
    id: str | None = None
    digests: list[str] = []


class PullRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tasks: list[str] = []
    images: list[str] = []


class CredentialCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    registry: str
    username: str
    password: str


class CredentialPublic(BaseModel):
    """What the API says about a stored login: never the secret."""

    registry: str
    username: str
    owner_uid: int | None = PydanticField(
        description="whose login it is; null: the daemon's own, used for every job whose owner has no login for the registry"
    )


class ErrorDetail(BaseModel):
    """What went wrong, in words a user can act on, and a stable code a program can test."""

    code: str = PydanticField(description="stable: `job_not_found`, `invalid_launch_config`, `refused_by_policy`, ...")
    message: str
    field: str | None = PydanticField(default=None, description="the parameter or key at fault; absent when the error names none")
    source: str | None = PydanticField(
        default=None, description="the file the value came from, such as ~/.tao_mounts.json; absent when none"
    )


class ErrorResponse(BaseModel):
    """The body of every error answer: {"error": {"code", "message", "field"?, "source"?}}."""

    error: ErrorDetail


class ApiToken(SQLModel, table=True):
    """A bearer token for TCP callers. Only the secret's SHA-256 is kept; the token is shown once.

    Its scope: `api`, the API as its account (uid, gid; every job with `admin`), or `scrape`, GET /metrics
    and nothing else, as no account (uid and gid null; `user` only names it).
    """

    __tablename__ = "api_token"

    id: str = Field(primary_key=True, max_length=16)
    user: str
    uid: int | None
    gid: int | None
    admin: bool = False
    scope: str = Field(default="api", max_length=16)
    secret_sha256: str
    created_at: datetime = Field(default_factory=utcnow)

"""A submission checked and made into a job: what `POST /v1/jobs` (and a run again) asks for, before it is recorded.

The request's text and sizes are checked first (access/input_checks.py), then its task in the
manifest, its launcher config (launch_options.py), the paths in its arguments (path_args.py),
where it runs (GPUs, nodes, a time limit, against what the backend places itself), and, for a
user who is not an admin, the policy (access/admission.py). The job's id is the caller's choice
in their own namespace, or a new one.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from tao_common import time_limits
from tao_server.access.admission import Admission, run_as_caller
from tao_server.access.caller import Caller, user_name_of
from tao_server.access.input_checks import RequestLimits, check_args, check_launch_config_size, check_nested_text, check_text
from tao_server.errors import InvalidRequest, JobConflict
from tao_server.images.manifest import Manifest, TaskSpec
from tao_server.jobs import launch_options, path_args
from tao_server.jobs.gpus import devices
from tao_server.jobs.gpus.scheduler import GpuScheduler
from tao_server.models import Job, JobCreate, JobStatus, utcnow
from tao_server.notify.notify_service import NotifyService

_ID_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no 0/o, 1/l: ids are read aloud and typed
MAX_ID_LENGTH = 64
# The fields that make two submissions the same job: a retried submission with one id is harmless.
SAME_JOB_FIELDS = (
    "group", "task", "subtask", "args", "image", "mounts", "envs", "docker_options", "gpu_request", "nodes", "time_limit", "pull_policy", "interactive",
    "status_file", "retries",
)  # fmt: skip


def new_job_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def namespaced_id(caller: Caller, chosen: str) -> str:
    """The id a job gets when `caller` chooses `chosen`: as it is for admins, NAME.chosen for users.

    Users never collide on the ids they choose, so none learns from a refusal which ids another
    has used. Generated ids have no dot, so they never fall in a user's namespace either.
    """
    if caller.admin:
        return chosen
    prefix = _namespace(caller)
    return chosen if chosen.startswith(prefix) else prefix + chosen


def _namespace(caller: Caller) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", caller.name or user_name_of(caller.uid) or f"u{caller.uid}") + "."


def chosen_id(caller: Caller, chosen: str) -> str:
    """namespaced_id for a new job, whose id must still fit the table."""
    job_id = namespaced_id(caller, chosen)
    if len(job_id) > MAX_ID_LENGTH:
        raise InvalidRequest(
            f"id: {job_id!r} (your chosen id in your namespace {_namespace(caller)!r}) is {len(job_id)} characters; "
            f"at most {MAX_ID_LENGTH}",
            field="id",
        )
    return job_id


def task_command(spec: TaskSpec, subtask: str | None, args: list[str], interactive: bool = False) -> list[str]:
    """The argv the container runs, as a list: never joined into a shell string.

    `tao <task> run CMD...` runs CMD itself in the task's image, as NVIDIA's launcher does; an
    interactive `run` without a command runs the image's own (its shell, in a toolkit image).
    """
    if subtask == "run":
        if not args and not interactive:
            raise InvalidRequest("`run` needs a command to run in the task's image (or -i, for the image's own shell)", field="args")
        return list(args)
    return [spec.name, *([subtask] if subtask is not None else []), *args]


class Submissions:
    def __init__(
        self,
        manifest: Manifest,
        scheduler: GpuScheduler,
        admission: Admission,
        pull_policy: str = "missing",
        limits: RequestLimits | None = None,
        places: frozenset[str] = frozenset(),
        attaches: bool = False,
        notify: NotifyService | None = None,
    ) -> None:
        self._limits = limits or RequestLimits()
        # What the backend decides itself (Backend.places): GPUs, nodes, time limits.
        self._places = places
        # Whether the backend can attach a terminal to a run and reach its ports (Backend.attaches).
        self._attaches = attaches
        self._manifest = manifest
        self._scheduler = scheduler
        self._admission = admission
        self._pull_policy = pull_policy
        # Checks the URLs a job notifies of its start and end; None: a daemon that sends no notifications.
        self._notify = notify

    def build(self, request: JobCreate, caller: Caller) -> tuple[Job, list[str]]:
        """The job the request asks for, checked, and the warnings about it (a results dir that nothing keeps)."""
        _check_request(request, self._limits)
        spec = self._manifest.resolve(request.group, request.task)
        config = launch_options.validate(request.launch_config, request.launch_config_source, self._admission.protected)
        warnings = path_args.check(request.args, config, request.subtask, request.launch_config_source)
        if request.status_file is not None:
            warnings += path_args.check_status_file(request.status_file, config, request.launch_config_source)
        placement = self.placement(request)
        if (request.interactive or request.tty) and not self._attaches:
            raise InvalidRequest(
                f"{'-t' if request.tty else '-i'}: this daemon's backend runs jobs in batch; "
                "a terminal needs a daemon whose jobs run on its own engine (tao-server --backend docker)",
                field="tty" if request.tty else "interactive",
            )
        if request.tty:
            config.docker_options["tty"] = True
        gpu_cap = None
        if caller.admin:
            run_as_caller(caller, config.docker_options)
        else:
            gpu_cap = self._admission.admit(
                caller, config.mounts, config.docker_options, config.envs, placement.gpus, placement.nodes, placement.time_limit
            )
        job = Job(
            id=chosen_id(caller, request.id) if request.id is not None else new_job_id(),
            group=spec.group,
            task=spec.name,
            subtask=request.subtask,
            args=request.args,
            command=task_command(spec, request.subtask, request.args, request.interactive),
            image=spec.image.reference,
            mounts=config.mounts,
            envs=config.envs,
            docker_options=config.docker_options,
            gpu_request=placement.gpu_request,
            nodes=request.nodes,
            time_limit=placement.time_limit,
            pull_policy=request.pull or self._pull_policy,
            owner_uid=caller.uid,
            owner_gid=caller.gid,
            gpu_cap=gpu_cap,
            gpu_shares=self._admission.shares(caller),
            interactive=request.interactive,
            notify_urls=self.notify_urls(caller, request.notify),
            status_file=request.status_file,
            retries=request.retries,
        )
        return job, warnings

    def notify_urls(self, caller: Caller, requested: list[str], defaults: bool = True) -> list[str]:
        """The URLs a new job notifies: those asked for and the caller's defaults, each checked (DestinationRefused)."""
        if self._notify is None:
            if requested:
                raise InvalidRequest("notify: this daemon sends no notifications", field="notify")
            return []
        return self._notify.for_job(caller, requested, defaults)

    def placement(self, request: JobCreate) -> Placement:
        """The job's GPUs, nodes and time limit, checked against what the backend places itself."""
        if "gpus" in self._places:  # the backend allocates devices (Slurm's gres): a count, never indices
            gpu_request = devices.resolve_count(request.gpus, request.gpu_indices)
            wanted = int(gpu_request.partition(":")[2] or 0)
        else:
            gpu_request = devices.resolve(request.gpus, request.gpu_indices, self._scheduler.inventory)
            wanted = self._scheduler.size(gpu_request) if gpu_request else 0
        if request.nodes not in (None, 1) and "nodes" not in self._places:
            raise InvalidRequest(
                f"--nodes {request.nodes}: this daemon runs each job on its own host; "
                "jobs across nodes need a daemon on a cluster (tao-server --backend slurm)",
                field="nodes",
            )
        # A backend that does not keep time limits (Docker) has the daemon keep them (runner/deadlines.py).
        time_limit = _time_limit(request.time) if request.time is not None else None
        return Placement(gpu_request, wanted, request.nodes or 1, time_limit)

    def rerun_of(self, old: Job, caller: Caller) -> Job:
        """`old`'s request again, as a new job of `caller`'s, admitted as a new submission is (not yet recorded)."""
        job = old.model_copy(
            update={
                "id": new_job_id(),
                "seq": None,
                "container_id": None,
                "status": JobStatus.queued,
                "exit_code": None,
                "error": None,
                "gpus": [],
                "owner_uid": caller.uid,
                "owner_gid": caller.gid,
                "cancel_requested": False,
                "created_at": utcnow(),
                "started_at": None,
                "finished_at": None,
                "progress": None,
                "progress_unavailable": None,
                "pipeline_id": None,
                "step": None,
                "attempt": 1,
                "attempt_offsets": [],
            }
        )
        job = Job.model_validate(job.model_dump())
        job.gpu_shares = self._admission.shares(caller)
        job.notify_urls = self.notify_urls(caller, old.notify_urls, defaults=False)
        if not caller.admin:
            wanted = self._scheduler.size(job.gpu_request) if job.gpu_request and "gpus" not in self._places else 0
            job.gpu_cap = self._admission.admit(caller, job.mounts, job.docker_options, job.envs, wanted, job.nodes or 1, job.time_limit)
        return job


@dataclass(frozen=True)
class Placement:
    """What a job asks of where it runs: its GPU request and how many devices that is, nodes, time limit (s)."""

    gpu_request: str
    gpus: int
    nodes: int = 1
    time_limit: int | None = None


def _time_limit(text: str) -> int:
    """The job's time limit in seconds; InvalidRequest naming Slurm's forms when `text` is none of them."""
    try:
        return time_limits.parse(text)
    except time_limits.NotATimeLimit as exc:
        raise InvalidRequest(str(exc), field="time") from None


def _check_request(request: JobCreate, limits: RequestLimits) -> None:
    """Refuse what the engine could not carry unchanged, or what passes the limits, before anything is looked up."""
    check_args(request.args, limits)
    for name in ("task", "subtask", "group", "id", "launch_config_source", "gpus", "time", "status_file"):
        if (value := getattr(request, name)) is not None:
            check_text(value, name)
    for name in ("after", "after_any"):
        for index, value in enumerate(getattr(request, name)):
            check_text(value, f"{name}[{index}]")
    for index, value in enumerate(request.gpu_indices or []):
        check_text(value, f"gpu_indices[{index}]")
    check_launch_config_size(request.launch_config, limits)
    if isinstance(request.launch_config, dict):
        for key, value in request.launch_config.items():
            check_nested_text(key, "launch_config (a key)")
            check_nested_text(value, key)


def same_or_conflict(existing: Job, wanted: Job) -> Job:
    if any(getattr(existing, name) != getattr(wanted, name) for name in SAME_JOB_FIELDS):
        raise JobConflict(f"job id {existing.id!r} is already used by a different job", field="id")
    return existing

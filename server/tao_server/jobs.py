"""The job service: submit, look up, list and cancel jobs. Routes call this; the runner executes."""

from __future__ import annotations

import secrets
from typing import Any

from tao_server import gpus as gpu_requests
from tao_server import host_access, launch_config
from tao_server.access import DAEMON, Caller
from tao_server.errors import InvalidRequest, JobConflict, JobNotFound
from tao_server.policy import Policy, PolicyRefusal, Rules
from tao_server.logs import LogStore
from tao_server.manifest import Manifest, TaskSpec
from tao_server.models import Job, JobCreate, JobPublic, JobStatus, utcnow
from tao_server.runner import JobRunner
from tao_server.store import DuplicateJobId, JobStore

_ID_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no 0/o, 1/l: ids are read aloud and typed
MAX_PAGE = 500


def new_job_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def task_command(spec: TaskSpec, subtask: str | None, args: list[str]) -> list[str]:
    """The argv the container runs, as a list: never joined into a shell string.

    `tao <task> run CMD...` runs CMD itself in the task's image, as NVIDIA's launcher does.
    """
    if subtask == "run":
        if not args:
            raise InvalidRequest("`run` needs a command to run in the task's image", field="args")
        return list(args)
    return [spec.name, *([subtask] if subtask is not None else []), *args]


class JobService:
    def __init__(
        self,
        store: JobStore,
        runner: JobRunner,
        logs: LogStore,
        manifest: Manifest,
        gpu_inventory: list[str],
        pull_policy: str = "missing",
        protected: launch_config.ProtectedPaths | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.store = store
        self.policy = policy or Policy()
        self.protected = protected or launch_config.ProtectedPaths()
        self.pull_policy = pull_policy
        self.runner = runner
        self.logs = logs
        self.manifest = manifest
        self.gpu_inventory = gpu_inventory

    def submit(self, request: JobCreate, caller: Caller = DAEMON) -> tuple[Job, bool]:
        """Record the job and hand it to the runner; (job, created). A repeated id with the same request is harmless."""
        job = self._build(request, caller)
        if request.id is not None and (existing := self.store.find(request.id)) is not None:
            return self._same_or_conflict(existing, job), False
        for _ in range(5):
            try:
                job = self.store.insert(job)
                break
            except DuplicateJobId:
                if request.id is not None:
                    return self._same_or_conflict(self.store.get(request.id), job), False
                job.id = new_job_id()
        self.logs.create(job.id)
        self.runner.enqueue(job)
        return job, True

    def get(self, job_id: str, caller: Caller = DAEMON) -> Job:
        """The job, if `caller` may see it; others' jobs answer as unknown ones, revealing nothing."""
        job = self.store.get(job_id)
        if not caller.may_see(job):
            raise JobNotFound.for_id(job_id)
        return job

    def public(self, job: Job) -> JobPublic:
        """The job as the API shows it, with its place in the GPU line while it waits there."""
        shown = JobPublic.model_validate(job)
        if job.status == JobStatus.queued and job.gpu_request:
            shown.gpu_queue_position = self.runner.gpu_position(job.id)
        return shown

    def page(
        self, statuses: list[JobStatus] | None, limit: int, cursor: str | None, container_id: str | None, caller: Caller = DAEMON
    ) -> tuple[list[Job], str | None]:
        if container_id is not None and not container_id.strip():
            raise InvalidRequest("container_id must not be empty", field="container_id")
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}, got {limit}", field="limit")
        before = None
        if cursor is not None:
            if not (cursor.isdecimal() and cursor.isascii() and int(cursor) < 2**63):
                raise InvalidRequest(f"cursor {cursor!r} is not one this server issued", field="cursor")
            before = int(cursor)
        owner = None if caller.admin else caller.uid
        jobs = self.store.page(statuses, limit + 1, before, container_id, owner)
        more = len(jobs) > limit
        jobs = jobs[:limit]
        return jobs, (str(jobs[-1].seq) if more and jobs else None)

    def cancel(self, job_id: str, caller: Caller = DAEMON) -> Job:
        job = self.get(job_id, caller)
        if job.status.terminal:
            return job
        if self.store.transition(job_id, [JobStatus.queued], status=JobStatus.cancelled, cancel_requested=True, finished_at=utcnow()):
            self.runner.forget(job_id)
        else:
            self.store.update(job_id, cancel_requested=True)
            self.runner.cancel(job_id)
        return self.store.get(job_id)

    def _build(self, request: JobCreate, caller: Caller) -> Job:
        for index, arg in enumerate(request.args):
            if "\0" in arg:
                raise InvalidRequest(f"args[{index}] contains a NUL byte, which no program can receive as an argument", field=f"args[{index}]")
        spec = self.manifest.resolve(request.group, request.task)
        config = launch_config.validate(request.launch_config, request.launch_config_source, self.protected)
        gpu_request = gpu_requests.resolve(request.gpus, request.gpu_indices, self.gpu_inventory)
        gpu_cap = None
        if not caller.admin:
            rules = self._check_rights(caller, config, gpu_request)
            _confine(caller, config.docker_options, rules)
            gpu_cap = rules.max_gpus
        elif caller.uid is not None and "user" not in config.docker_options:
            # Files the task writes into mounts belong to whoever ran it, not to root.
            config.docker_options["user"] = f"{caller.uid}:{caller.gid}"
        return Job(
            id=request.id or new_job_id(),
            group=spec.group,
            task=spec.name,
            subtask=request.subtask,
            args=request.args,
            command=task_command(spec, request.subtask, request.args),
            image=spec.image.reference,
            mounts=config.mounts,
            envs=config.envs,
            docker_options=config.docker_options,
            gpu_request=gpu_request,
            pull_policy=request.pull or self.pull_policy,
            owner_uid=caller.uid,
            owner_gid=caller.gid,
            gpu_cap=gpu_cap,
        )

    def _check_rights(self, caller: Caller, config: launch_config.LaunchConfig, gpu_request: str) -> Rules:
        """What the policy does not grant a caller who is not an admin is refused, naming the rule."""
        rules = self.policy.check(caller, config.mounts, config.docker_options, config.envs)
        for index, mount in enumerate(config.mounts):
            field = f"Mounts[{index}].source"
            if (inner := self.protected.contained(mount["source"])) is not None:
                raise PolicyRefusal(f"{field}: {mount['source']!r} contains {inner}, which jobs may not mount", field=field)
            if host_access.unreadable(mount["source"], caller):
                raise PolicyRefusal(
                    f"{field}: {mount['source']!r} is not readable by {caller.describe()}; a job may mount only what its user could read",
                    field=field,
                )
        wanted = self.runner.gpu_size(gpu_request) if gpu_request else 0
        if rules.max_gpus is not None and wanted > rules.max_gpus:
            raise PolicyRefusal(
                f"gpus: this job asks for {wanted} GPUs, but {self.policy.name} lets {caller.describe()} hold at most "
                f"{rules.max_gpus} at once",
                field="gpus",
            )
        return rules

    @staticmethod
    def _same_or_conflict(existing: Job, wanted: Job) -> Job:
        fields = ("group", "task", "subtask", "args", "image", "mounts", "envs", "docker_options", "gpu_request", "pull_policy")
        if any(getattr(existing, name) != getattr(wanted, name) for name in fields):
            raise JobConflict(f"job id {existing.id!r} is already used by a different job", field="id")
        return existing


def _confine(caller: Caller, options: dict[str, Any], rules: Rules) -> None:
    """Run a user's job as that user, with no way to gain privileges inside the container.

    The job gets the caller's uid, gid and groups (a bare uid would run with gid 0, root's group).
    no-new-privileges makes setuid programs in the image harmless, and without the `user` grant
    the job keeps no capabilities: it is an ordinary process of its user, only in a container.
    """
    if "user" not in options or "user" not in rules.allow:  # without the grant, it names the caller (policy.py)
        gid = str(options.get("user", "")).partition(":")[2] or str(caller.gid)
        options["user"] = f"{caller.uid}:{gid}"
        if extra := [str(g) for g in caller.groups if str(g) != gid]:
            options["group_add"] = extra
    security = options.setdefault("security_opt", [])
    if not any(opt.startswith("no-new-privileges") for opt in security):
        security.append("no-new-privileges:true")
    if "user" not in rules.allow:
        options["cap_drop"] = ["ALL"]

"""The job service: submit, look up, list, cancel and read jobs. Routes call this; the runner executes.

A submission is checked and made into a job by submission.py, then recorded here (its log, then
its row) and handed to the runner.

Every call that shows or changes a job takes the caller: a user sees and stops only their own
jobs, and another user's job answers exactly like one that does not exist.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from tao_server.access.admission import Admission
from tao_server.access.caller import Caller, user_name_of
from tao_server.access.input_checks import RequestLimits
from tao_server.errors import DuplicateJobId, InvalidRequest, JobNotFound, StorageFull
from tao_server.images.manifest import Manifest
from tao_server.jobs.dependencies import edges
from tao_server.jobs.events import EventLog
from tao_server.jobs.gpus.gpu_line import Wait
from tao_server.jobs.gpus.scheduler import GpuScheduler
from tao_server.jobs.log_files import Heartbeat, LogStore
from tao_server.jobs.progress.progress_state import shown as progress_shown
from tao_server.jobs.runner import JobRunner
from tao_server.jobs.store import JobStore
from tao_server.jobs.submission import Submissions, namespaced_id, new_job_id, same_or_conflict
from tao_server.models import DependencyKind, GpuWait, Job, JobCreate, JobDependency, JobProgress, JobPublic, JobStatus
from tao_server.notify.notify_service import NotifyService
from tao_server.notify.urls import masked

MAX_PAGE = 500
MAX_CURSOR_DIGITS = len(str(2**63 - 1))  # a cursor is a row's seq, an SQLite integer


class JobService:
    def __init__(
        self,
        store: JobStore,
        runner: JobRunner,
        logs: LogStore,
        events: EventLog,
        manifest: Manifest,
        scheduler: GpuScheduler,
        admission: Admission,
        pull_policy: str = "missing",
        limits: RequestLimits | None = None,
        places: frozenset[str] = frozenset(),
        attaches: bool = False,
        notify: NotifyService | None = None,
        gpu_condition: Callable[[str], str | None] | None = None,
    ) -> None:
        """`gpu_condition`: what the devices a job holds say of it ("GPU 1 idle for 12 min"); None: nothing samples them."""
        self._submissions = Submissions(manifest, scheduler, admission, pull_policy, limits, places, attaches, notify)
        self._gpu_condition = gpu_condition
        self._store = store
        self._runner = runner
        self._logs = logs
        self._events = events
        self._scheduler = scheduler

    # -- jobs ---------------------------------------------------------------------------------------

    def submit(
        self, request: JobCreate, caller: Caller, tag: tuple[str, str] | None = None, trial_of: tuple[str, int] | None = None
    ) -> tuple[Job, bool, list[str]]:
        """Record the job and hand it to the runner; (job, created, warnings about the request).

        A repeated id with the same request is harmless (and warned about again). `tag`: the
        workflow it belongs to and its name there (a pipeline and its step); `trial_of`: the sweep and
        trial number the job runs (tao_server.sweeps).
        """
        job, warnings = self._submissions.build(request, caller)
        after, after_any = self._dependencies(request, caller)
        if tag is not None:
            job.pipeline_id, job.step = tag
        if trial_of is not None:
            job.sweep_id, job.trial = trial_of
        if request.id is not None and (existing := self._store.find(job.id)) is not None:
            return same_or_conflict(existing, job), False, warnings
        for _ in range(5):
            try:
                job = self._record(job, after, after_any)
                break
            except DuplicateJobId:
                if request.id is not None:
                    return same_or_conflict(self._store.get(job.id), job), False, warnings
                job.id = new_job_id()
        self._runner.enqueue(job)
        return job, True, warnings

    def check(self, request: JobCreate, caller: Caller) -> list[str]:
        """Everything `submit` would refuse, with nothing recorded; the warnings it would give."""
        _, warnings = self._submissions.build(request, caller)
        self._dependencies(request, caller)
        return warnings

    def _dependencies(self, request: JobCreate, caller: Caller) -> tuple[list[str], list[str]]:
        """The ids of the jobs the request waits for: the caller's own (anyone's for an admin); an unknown one is refused, naming it."""
        found: dict[str, list[str]] = {"after": [], "after_any": []}
        for name, ids in (("after", request.after), ("after_any", request.after_any)):
            for index, job_id in enumerate(ids):
                try:
                    found[name].append(self.get(job_id, caller).id)
                except JobNotFound:
                    option = "--after" if name == "after" else "--after-any"
                    raise InvalidRequest(
                        f"{option} {job_id}: no job {job_id!r} of yours to wait for; `tao list --all` shows them",
                        field=f"{name}[{index}]",
                    ) from None
        return found["after"], found["after_any"]

    def _record(self, job: Job, after: list[str] = [], after_any: list[str] = []) -> Job:  # noqa: B006
        """Make the job's log, its dependencies, then its row. The log first: a job whose log cannot be made is
        never recorded (a full disk is a 507); a row the database refuses leaves no log or edge behind."""
        made = self._logs.create(job.id)
        try:
            return self._store.insert(job, edges(job.id, after, after_any))
        except StorageFull:
            if made:
                self._logs.discard(job.id)
            raise

    def get(self, job_id: str, caller: Caller) -> Job:
        """The job, if `caller` may see it; others' jobs answer as unknown ones, revealing nothing.

        A user may name a job they chose the id of without its namespace: `run1` for `alice.run1`.
        """
        job = self._store.find(job_id)
        if (job is None or not caller.may_see(job)) and not caller.admin:
            job = self._store.find(namespaced_id(caller, job_id))
        if job is None or not caller.may_see(job):
            raise JobNotFound.for_id(job_id)
        return self._runner.ends.shown(job)

    def shown(self, job: Job) -> Job:
        """The job as it stands, with an end the database has not taken yet (runner/unrecorded.py)."""
        return self._runner.ends.shown(job)

    def dependencies_of(self, job_id: str) -> list[JobDependency]:
        """The jobs `job_id` waits (or waited) for."""
        return self._runner.dependencies.of(job_id)

    def public(self, job: Job) -> JobPublic:
        """The job as the API shows it, with its place in the GPU line and why it waits there, while it does."""
        shown = JobPublic.model_validate(job)
        shown.notify = [masked(url) for url in job.notify_urls]
        if job.progress is not None:
            shown.progress = JobProgress.model_validate(progress_shown(job.progress, job.status.terminal))
        if job.status in (JobStatus.queued, JobStatus.pulling) and job.gpu_request:
            wait = self._scheduler.wait(job.id)
            if wait is not None:
                shown.gpu_queue_position = wait.position
                shown.gpu_wait = self._gpu_wait(job, wait)
        for edge in self.dependencies_of(job.id):
            (shown.after if edge.kind == DependencyKind.ok else shown.after_any).append(edge.after_id)
        if shown.gpu_wait is not None:
            shown.expected_start = shown.gpu_wait.reserved_from
        elif job.status == JobStatus.queued:
            shown.expected_start = self._runner.expected_start(job.id)  # a backend's queue plans it (Slurm)
        if not job.status.terminal:
            said = [self._runner.condition(job.id), self._gpu_condition(job.id) if self._gpu_condition is not None else None]
            shown.condition = "; ".join(part for part in said if part) or None
        return shown

    def _gpu_wait(self, job: Job, wait: Wait) -> GpuWait:
        """Why the job waits, for its owner's eyes: another user's job is named by whose it is, never by its id."""
        behind = None
        if wait.behind is not None:
            ahead = self._store.find(wait.behind)
            same_owner = ahead is not None and ahead.owner_uid == job.owner_uid
            behind = f"job {wait.behind}" if same_owner or ahead is None else f"a job of {_whose(ahead.owner_uid)}"
        reserved = datetime.fromtimestamp(wait.reserved_from, UTC) if wait.reserved_from is not None else None
        messages = {
            "devices": f"needs {_gpus(wait.needs)}, {wait.free} free",
            "behind": f"behind {behind}",
            "image": "keeps its place while its image is pulled",
            "cap": f"its owner holds the {_gpus(job.gpu_cap or 0)} the policy lets them hold at once",
        }
        message = messages[wait.reason]
        if reserved is not None:
            message += f"; reserved from {reserved.isoformat(timespec='seconds').replace('+00:00', 'Z')}"
        return GpuWait(reason=wait.reason, message=message, needs=wait.needs, free=wait.free, behind=behind, reserved_from=reserved)

    def page(
        self,
        caller: Caller,
        statuses: list[JobStatus] | None,
        limit: int,
        cursor: str | None,
        container_id: str | None,
        task: str | None = None,
        owner: str | None = None,
    ) -> tuple[list[Job], str | None]:
        """The caller's jobs (every job for an admin), newest first, and the cursor of the next page.

        `owner` (a user name or uid) narrows an admin's view; a user's view is their own jobs already.
        """
        if container_id is not None and not container_id.strip():
            raise InvalidRequest("container_id must not be empty", field="container_id")
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}, got {limit}", field="limit")
        before = None
        if cursor is not None:
            # The length first: int() refuses strings of more than 4300 digits with a ValueError.
            if not (cursor.isdecimal() and cursor.isascii() and len(cursor) <= MAX_CURSOR_DIGITS and int(cursor) < 2**63):
                raise InvalidRequest(f"cursor {cursor[:40]!r} is not one this server issued", field="cursor")
            before = int(cursor)
        owner_uid = _owner_uid(owner) if caller.admin else caller.uid
        if caller.admin and owner is not None and owner_uid is None:
            return [], None  # no such account: no jobs
        found = self._store.page(statuses, limit + 1, before, container_id, owner_uid, task=task)
        jobs = [self._runner.ends.shown(job) for job in found]
        more = len(jobs) > limit
        jobs = jobs[:limit]
        return jobs, (str(jobs[-1].seq) if more and jobs else None)

    def rerun(self, job_id: str, caller: Caller) -> Job:
        """The job's request again, as a new job of `caller`'s, admitted as a new submission is."""
        old = self.get(job_id, caller)
        job = self._submissions.rerun_of(old, caller)
        job = self._record(job)
        self._runner.enqueue(job)
        return job

    def cancel(self, job_id: str, caller: Caller) -> Job:
        job = self.get(job_id, caller)
        if job.status.terminal:
            return job
        job_id = job.id  # the name the caller gave may leave out their namespace ("run1" for "alice.run1")
        if self._store.cancel_unstarted(job_id):
            self._runner.forget(job_id)
        else:
            self._store.update(job_id, cancel_requested=True)
            self._runner.cancel(job_id)
        return self._store.get(job_id)

    def counts(self, caller: Caller) -> dict[str, int]:
        """How many of the jobs `caller` may see are in each status (for `tao info`): every job for an admin."""
        return self._store.counts(None if caller.admin else caller.uid)

    def gpu_view(self, caller: Caller) -> list[dict[str, Any]]:
        """Each GPU, free or held; which job holds it only for those who may see that job."""
        shown = []
        for index, holder in self._scheduler.holders().items():
            held_by = self._store.find(holder) if holder is not None else None
            visible = held_by is not None and caller.may_see(held_by)
            shown.append({"index": index, "held": holder is not None, "job": holder if visible else None})
        return shown

    # -- output -------------------------------------------------------------------------------------

    def read_log(self, job_id: str, caller: Caller, offset: int, attempt: int | None = None) -> Iterator[bytes]:
        """The job's output from byte `offset`, as it is now; with `attempt`, that attempt's output alone (offset within it)."""
        job = self.get(job_id, caller)
        if attempt is None:
            return self._logs.chunks(job.id, offset)
        start, end = self.attempt_span(job, attempt)
        return _until(self._logs.chunks(job.id, start + offset), None if end is None else max(0, end - start - offset))

    def attempt_span(self, job: Job, attempt: int) -> tuple[int, int | None]:
        """Where attempt `attempt` (from 1) of the job's output starts in its log, and where it ends (None: it is the last)."""
        offsets = job.attempt_offsets or [0]
        if not 1 <= attempt <= len(offsets):
            raise InvalidRequest(f"attempt {attempt}: job {job.id} has run {len(offsets)} attempt(s) so far", field="attempt")
        return offsets[attempt - 1], offsets[attempt] if attempt < len(offsets) else None

    def log_window(self, job_id: str, caller: Caller, before: int | None, size: int) -> tuple[int, bytes]:
        """Up to `size` bytes of output ending at byte `before` (None: the end), and where they start."""
        job = self.get(job_id, caller)
        end = self._logs.size(job.id) if before is None else min(before, self._logs.size(job.id))
        start = max(0, end - size)
        data = bytearray()
        for chunk in self._logs.chunks(job.id, start):
            data += chunk
            if len(data) >= end - start:
                break
        return start, bytes(data[: end - start])

    def size_of_log(self, job_id: str, caller: Caller) -> int:
        """How many bytes of output the job's log holds now, if `caller` may see the job."""
        return self._logs.size(self.get(job_id, caller).id)

    def log_size(self, job_id: str) -> int:
        """How many bytes of output the job's log holds now (the caller has been checked)."""
        return self._logs.size(job_id)

    def follow_log(self, job_id: str, caller: Caller, offset: int, heartbeat: float | None) -> AsyncIterator[bytes | Heartbeat]:
        """The job's output from `offset` as it is written, until the job's end is recorded and read."""
        job_id = self.get(job_id, caller).id
        return self._logs.follow(job_id, offset, lambda: self._runner.is_finished(job_id), heartbeat)

    def stop_following(self) -> None:
        """The daemon stops: every log stream ends now (DaemonStopping), rather than hold the stop up."""
        self._logs.stop()

    def events(self, job_id: str, caller: Caller, after: int) -> list[dict[str, Any]]:
        """The job's events (such as image pull progress) after number `after`."""
        job = self.get(job_id, caller)
        return self._events.after(job.id, after)

    # -- building a job -----------------------------------------------------------------------------


def _until(chunks: Iterator[bytes], size: int | None) -> Iterator[bytes]:
    """The first `size` bytes of `chunks` (all of them for None)."""
    for chunk in chunks:
        if size is not None:
            if size <= 0:
                return
            chunk, size = chunk[:size], size - len(chunk)
        yield chunk


def _whose(uid: int | None) -> str:
    """How a waiting job names the owner of the job ahead of it."""
    if uid is None:
        return "the daemon"
    return user_name_of(uid) or f"uid {uid}"


def _gpus(count: int) -> str:
    return f"{count} GPU" + ("" if count == 1 else "s")


def _owner_uid(owner: str | None) -> int | None:
    """The uid an owner filter names: a number, or a local account's name; None for none or an unknown name."""
    if owner is None:
        return None
    if owner.isdecimal() and owner.isascii() and len(owner) < 12:
        return int(owner)
    import pwd

    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        return None

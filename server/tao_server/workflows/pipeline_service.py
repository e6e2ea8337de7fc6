"""PipelineService: run a pipeline file as one submission, and list, show and stop pipelines.

A run reads the file whole (pipeline_file.py), then checks every step as the job it would be (its
task, the caller's launcher config, the policy) before anything is recorded: a file that cannot run
submits nothing. Then the pipeline's row, then its steps, each after those it needs, as ordinary
jobs of the caller tagged with the pipeline and their step (steps.submit_step): the runner holds
each in `queued` until its dependencies end (jobs/runner/waiting.py).
"""

from __future__ import annotations

import logging

from tao_server.access.caller import Caller
from tao_server.errors import JobNotFound, PipelineNotFound, TaoError
from tao_server.jobs.service import JobService
from tao_server.jobs.store import JobStore
from tao_server.jobs.submission import new_job_id
from tao_server.models import ACTIVE_STATUSES, Job, JobStatus, Pipeline
from tao_server.workflows.pipeline_file import parse_pipeline
from tao_server.workflows.pipeline_models import PipelineCreate, PipelinePublic, PipelineStatus, PipelineStepPublic
from tao_server.workflows.pipeline_store import PipelineStore
from tao_server.workflows.steps import LaunchContext, check_step, submit_step

log = logging.getLogger(__name__)
MAX_LISTED = 200


class PipelineService:
    def __init__(self, jobs: JobService, job_store: JobStore) -> None:
        self._jobs = jobs
        self._job_store = job_store
        self._store = PipelineStore(job_store)

    def run(self, request: PipelineCreate, caller: Caller) -> Pipeline:
        """Check the file and every step whole, then submit the steps; nothing is submitted when anything is refused."""
        pipeline_file = parse_pipeline(request.text, request.source)
        launch = LaunchContext(request.launch_config, request.launch_config_source, [*pipeline_file.notify, *request.notify], request.pull)
        for name in pipeline_file.order:
            check_step(self._jobs, caller, pipeline_file.step(name), launch)
        pipeline = Pipeline(
            id=new_job_id(),
            owner_uid=caller.uid,
            owner_gid=caller.gid,
            source=request.source,
            steps=[step.name for step in pipeline_file.steps],
        )
        self._store.insert(pipeline)
        submitted: dict[str, str] = {}
        try:
            for name in pipeline_file.order:
                step = pipeline_file.step(name)
                submitted[name] = submit_step(self._jobs, caller, step, launch, submitted, tag=(pipeline.id, name)).id
        except TaoError:
            # Refused between the check and now (a full disk, a policy reloaded): what was submitted is stopped.
            for job_id in submitted.values():
                self._jobs.cancel(job_id, caller)
            raise
        return pipeline

    def get(self, pipeline_id: str, caller: Caller) -> Pipeline:
        """The pipeline, if `caller` may see it; another user's answers as an unknown one."""
        pipeline = self._store.find(pipeline_id)
        if pipeline is None or not (caller.admin or pipeline.owner_uid == caller.uid) or caller.scrape_only:
            raise PipelineNotFound.for_id(pipeline_id)
        return pipeline

    def newest(self, caller: Caller) -> list[Pipeline]:
        """The caller's pipelines (everyone's for an admin), newest first."""
        return self._store.newest(None if caller.admin else caller.uid, MAX_LISTED)

    def stop(self, pipeline_id: str, caller: Caller) -> Pipeline:
        """Cancel every step that has not ended: the waiting ones first, so none starts meanwhile."""
        pipeline = self.get(pipeline_id, caller)
        steps = self._job_store.of_pipeline(pipeline.id)
        for job in sorted(steps, key=lambda job: job.status != JobStatus.queued):
            if job.status in ACTIVE_STATUSES:
                try:
                    self._jobs.cancel(job.id, caller)
                except JobNotFound:  # an admin's view covers every step; a user's covers their own
                    log.info("pipeline %s: step %s is not the caller's to stop", pipeline.id, job.step)
        return pipeline

    def public(self, pipeline: Pipeline) -> PipelinePublic:
        """The pipeline with each step's job as it stands, in the order its file wrote them."""
        jobs = {job.step: self._jobs.shown(job) for job in self._job_store.of_pipeline(pipeline.id) if job.step is not None}
        names = {job.id: name for name, job in jobs.items()}
        steps = []
        for name in pipeline.steps:
            job = jobs.get(name)
            if job is None:
                continue  # a step that was never submitted (refused while the pipeline was being submitted)
            after = [names.get(edge.after_id, edge.after_id) for edge in self._jobs.dependencies_of(job.id)]
            steps.append(_step(name, job, after))
        status, exit_code = _outcome(steps)
        return PipelinePublic(
            id=pipeline.id,
            source=pipeline.source,
            owner_uid=pipeline.owner_uid,
            status=status,
            exit_code=exit_code,
            created_at=pipeline.created_at,
            steps=steps,
        )


def _step(name: str, job: Job, after: list[str]) -> PipelineStepPublic:
    duration = None
    if job.started_at is not None and job.finished_at is not None:
        duration = max(0.0, (job.finished_at - job.started_at).total_seconds())
    return PipelineStepPublic(
        name=name,
        job_id=job.id,
        status=job.status,
        exit_code=job.exit_code,
        error=job.error,
        attempt=job.attempt,
        after=after,
        started_at=job.started_at,
        finished_at=job.finished_at,
        duration_seconds=duration,
    )


def _outcome(steps: list[PipelineStepPublic]) -> tuple[PipelineStatus, int | None]:
    """The pipeline's status and exit code: the first failed step's (by its end), 0 when all succeeded."""
    failed = sorted(
        (step for step in steps if step.status in (JobStatus.failed, JobStatus.error)),
        key=lambda step: (step.finished_at is None, step.finished_at),
    )
    exit_code = failed[0].exit_code if failed else None
    if any(step.status in ACTIVE_STATUSES for step in steps):
        started = any(step.started_at is not None or step.status.terminal for step in steps)
        return ("running" if started else "queued"), exit_code
    if failed:
        return "failed", exit_code
    if all(step.status == JobStatus.succeeded for step in steps):
        return "succeeded", 0
    return "cancelled", None

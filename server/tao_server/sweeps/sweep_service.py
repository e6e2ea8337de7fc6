"""The sweep service: start, list, show and stop sweeps (what the routes call); the driver runs them.

A sweep file is checked whole before anything starts: the file itself (sweep_file.py), then its
first trial's job as a submission would be (the task, the launcher config, the GPUs, the policy),
so that a sweep that cannot run is refused with nothing submitted. Each trial is then an ordinary
job of the sweep's owner, with the owner's launcher config, submitted as they would submit it.
A user sees and stops only their own sweeps; another user's answers like one that does not exist.
"""

from __future__ import annotations

from typing import Any

from tao_server.access.caller import DAEMON, Caller, caller_from_peer
from tao_server.errors import SweepNotFound
from tao_server.jobs.service import JobService
from tao_server.jobs.store import JobStore
from tao_server.jobs.submission import new_job_id
from tao_server.sweeps import sweep_file, trial_args
from tao_server.sweeps.driver import SweepDriver, gpu_seconds
from tao_server.sweeps.spec_copies import write_spec_copy
from tao_server.sweeps.sweep_file import SweepSpec
from tao_server.sweeps.sweep_models import BestTrial, Sweep, SweepCreate, SweepPublic, SweepState, SweepSummary, TrialPublic
from tao_server.sweeps.sweep_store import SweepStore
from tao_server.workflows.steps import LaunchContext, check_step, submit_step


class SweepService:
    def __init__(self, store: SweepStore, jobs: JobService, job_store: JobStore, driver: SweepDriver) -> None:
        self._store = store
        self._jobs = jobs
        self._job_store = job_store
        self._driver = driver
        driver.submit = self._submit_trial
        driver.cancel = self._stop_job

    def create(self, request: SweepCreate, caller: Caller) -> tuple[Sweep, list[str]]:
        """Check the file and its first trial's job, then record the sweep and hand it to the driver; (sweep, warnings)."""
        spec = sweep_file.parse(request.file, request.source)
        sweep = Sweep(
            id=new_job_id(),
            owner_uid=caller.uid,
            owner_gid=caller.gid,
            spec=spec.to_json(),
            source=request.source,
            launch_config=request.launch_config,
            launch_config_source=request.launch_config_source,
        )
        warnings = check_step(self._jobs, caller, trial_args.trial_step(spec, 0, _middle(spec)), _launch(sweep))
        self._store.insert(sweep)
        self._driver.add(sweep)
        return sweep, warnings

    def get(self, sweep_id: str, caller: Caller) -> Sweep:
        sweep = self._store.find(sweep_id)
        if sweep is None or not (caller.admin or sweep.owner_uid == caller.uid) or caller.scrape_only:
            raise SweepNotFound.for_id(sweep_id)
        return sweep

    def listing(self, caller: Caller) -> list[SweepSummary]:
        """The caller's sweeps (every sweep for an admin), newest first."""
        return [_summary(sweep) for sweep in self._store.listing(caller.uid, everyone=caller.admin)]

    def show(self, sweep_id: str, caller: Caller) -> SweepPublic:
        """The sweep, its trials and its best trial so far."""
        from tao_server.sweeps import study

        sweep = self.get(sweep_id, caller)
        spec = SweepSpec.from_json(sweep.spec)
        active = self._driver.held(sweep.id)
        if active is not None:
            with active.lock:
                trials = active.study.get_trials()
                sweep = active.sweep
        else:
            trials = study.open_study(self._driver.study_path(sweep.id), sweep.id, spec).get_trials()
        shown = [
            TrialPublic(
                number=trial.number,
                state=study.state_of(trial),
                value=trial.value,
                params=trial.params,
                job=trial.user_attrs.get("job"),
                epochs=len(trial.intermediate_values),
                intermediate=dict(trial.intermediate_values),
                error=trial.user_attrs.get("error"),
            )
            for trial in trials
        ]
        return SweepPublic(
            id=sweep.id,
            state=sweep.state,
            source=sweep.source,
            kpi=spec.kpi,
            direction=spec.direction,
            trials_asked=spec.trials,
            parallel=spec.parallel,
            message=sweep.message,
            gpu_seconds=gpu_seconds(self._job_store.of_sweep(sweep.id)),
            created_at=sweep.created_at,
            finished_at=sweep.finished_at,
            trials=shown,
            best=_best(spec, shown),
        )

    def stop(self, sweep_id: str, caller: Caller) -> SweepPublic:
        sweep = self.get(sweep_id, caller)
        if sweep.state == SweepState.running:
            self._driver.stop(sweep.id)
        return self.show(sweep.id, caller)

    def _stop_job(self, job_id: str) -> None:
        self._jobs.cancel(job_id, DAEMON)

    def _submit_trial(self, sweep: Sweep, spec: SweepSpec, number: int, params: dict[str, Any]) -> str:
        """Submit the trial's job as its owner would; the same trial again finds the job it has (its id is made from the trial)."""
        owner = _owner(sweep)
        if spec.spec_template is not None:
            write_spec_copy(sweep, spec, number, params)
        step = trial_args.trial_step(spec, number, params)
        job = submit_step(self._jobs, owner, step, _launch(sweep), trial_of=(sweep.id, number), job_id=f"{sweep.id}-{number}")
        return job.id


def _launch(sweep: Sweep) -> LaunchContext:
    """What applies to each trial's job as to any job of the owner's: their launcher config."""
    return LaunchContext(sweep.launch_config, sweep.launch_config_source)


def _owner(sweep: Sweep) -> Caller:
    if sweep.owner_uid is None or sweep.owner_gid is None:
        return DAEMON
    return caller_from_peer((sweep.owner_uid, sweep.owner_gid, ()))


def _middle(spec: SweepSpec) -> dict[str, Any]:
    """A value of each parameter, for checking a trial's job before the sweep starts."""
    values: dict[str, Any] = {}
    for param in spec.params:
        if param.type == "choice":
            values[param.name] = param.choices[0]
        else:
            values[param.name] = param.low if param.type == "float" else int(param.low or 0)
    return values


def _best(spec: SweepSpec, trials: list[TrialPublic]) -> BestTrial | None:
    done = [trial for trial in trials if trial.state == "complete" and trial.value is not None]
    if not done:
        return None
    pick = max if spec.direction == "maximize" else min
    best = pick(done, key=lambda trial: trial.value or 0.0)
    return BestTrial(
        number=best.number, value=best.value or 0.0, params=best.params, command=trial_args.command(spec, best.number, best.params)
    )


def _summary(sweep: Sweep) -> SweepSummary:
    spec = sweep.spec
    return SweepSummary(
        id=sweep.id,
        state=sweep.state,
        source=sweep.source,
        kpi=spec["kpi"],
        trials_asked=spec["trials"],
        created_at=sweep.created_at,
    )

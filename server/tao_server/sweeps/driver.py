"""SweepDriver: one thread runs every active sweep, a tick at a time.

Each tick, for each sweep: each running trial's new epochs are reported to its study (the KPI
from the status file, `trial.report(value, epoch)`), and a trial the pruner gives up is told
`pruned` at once and its job stopped (SIGTERM, then the stop timeout); a trial whose job has ended
is told complete (its KPI's last or best value) or failed (the job failed, or the KPI never
appeared: the message names the one expected and the ones written); free places are filled with
new trials, up to `parallel` jobs at once, `trials` in all, within the GPU-hours budget.

No trial is lost or run twice across a restart: a trial's job id is made from the sweep's id and
the trial's number, so a trial asked for just before the daemon stopped, whose job may or may not
have been recorded, is submitted again under the same id, which finds the job if it is there.
A job's end wakes the thread at once (the runner's end listener); otherwise it ticks every INTERVAL.

Optuna is imported when the first sweep is loaded (study.py), never before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tao_server.errors import TaoError
from tao_server.jobs.progress.metric_store import SAMPLED, MetricStore
from tao_server.jobs.store import JobStore
from tao_server.models import Job, JobStatus, utcnow
from tao_server.sweeps.sweep_file import SweepSpec
from tao_server.sweeps.sweep_models import Sweep, SweepState
from tao_server.sweeps.sweep_store import SweepStore

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

INTERVAL = 0.25
# submit(sweep, spec, number, params) -> the trial's job id; cancel(job_id)
Submit = Callable[[Sweep, SweepSpec, int, dict[str, Any]], str]
Cancel = Callable[[str], None]


@dataclass
class ActiveSweep:
    """A running sweep as the driver holds it: its row, its file, its study, and the jobs of ended trials still stopping."""

    sweep: Sweep
    spec: SweepSpec
    study: optuna.Study
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: set[str] = field(default_factory=set)


class SweepDriver:
    def __init__(self, store: SweepStore, jobs: JobStore, metrics: MetricStore, data_dir: Path, interval: float = INTERVAL) -> None:
        self._store = store
        self._jobs = jobs
        self._metrics = metrics
        self._dir = data_dir / "sweeps"
        self._interval = interval
        self._active: dict[str, ActiveSweep] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.submit: Submit | None = None
        self.cancel: Cancel | None = None

    def study_path(self, sweep_id: str) -> Path:
        return self._dir / f"{sweep_id}.journal"

    # -- what the service and the daemon call -------------------------------------------------------

    def resume(self) -> None:
        """At start-up, after the runner's reconcile: take up every sweep that was running."""
        for sweep in self._store.active():
            self.add(sweep)

    def add(self, sweep: Sweep) -> None:
        from tao_server.sweeps import study

        spec = SweepSpec.from_json(sweep.spec)
        active = ActiveSweep(sweep, spec, study.open_study(self.study_path(sweep.id), sweep.id, spec))
        with self._lock:
            self._active[sweep.id] = active
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="sweeps", daemon=True)
                self._thread.start()
        self._wake.set()

    def held(self, sweep_id: str) -> ActiveSweep | None:
        with self._lock:
            return self._active.get(sweep_id)

    def wake(self, job_id: str | None = None) -> None:
        self._wake.set()

    def shutdown(self) -> None:
        self._stop.set()
        self._wake.set()

    def stop(self, sweep_id: str) -> None:
        """`tao sweep stop`: no trial starts any more, and the running ones are stopped and told failed."""
        from tao_server.sweeps import study

        active = self.held(sweep_id)
        if active is None:
            return
        with active.lock:
            for trial in active.study.get_trials(deepcopy=False):
                if study.running(trial):
                    study.tell_failed(active.study, trial.number, "stopped with the sweep (tao sweep stop)")
                    self._stop_job(active, trial.user_attrs.get("job"))
            self._finish(active, SweepState.stopped, None)

    # -- the thread ---------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            with self._lock:
                sweeps = list(self._active.values())
            for active in sweeps:
                try:
                    with active.lock:
                        self._tick(active)
                except Exception:  # one sweep's failure must not stop the others; it is tried again next tick
                    log.exception("sweep %s: a step of it failed", active.sweep.id)

    def _tick(self, active: ActiveSweep) -> None:
        from tao_server.sweeps import study

        if active.sweep.state != SweepState.running:
            return
        trials = active.study.get_trials(deepcopy=False)
        busy = 0
        for trial in trials:
            if study.running(trial):
                busy += 1
                self._advance(active, trial.number, trial.params, trial.user_attrs.get("job"))
        active.stopping = {job_id for job_id in active.stopping if not self._ended(job_id)}
        spent = self._budget_spent(active)
        asked = len(trials)
        while busy + len(active.stopping) < active.spec.parallel and asked < active.spec.trials and spent is None:
            self._start_trial(active)
            asked += 1
            busy += 1
        if busy == 0 and not active.stopping and (asked >= active.spec.trials or spent is not None):
            self._finish(active, SweepState.completed, spent)

    def _start_trial(self, active: ActiveSweep) -> None:
        from tao_server.sweeps import study

        trial = active.study.ask(study.distributions(active.spec))
        self._advance(active, trial.number, trial.params, None)

    def _advance(self, active: ActiveSweep, number: int, params: dict[str, Any], job_id: str | None) -> None:
        """One running trial: its job submitted (again, harmlessly, after a restart), its new epochs reported, its end told."""
        from tao_server.sweeps import study

        if job_id is None:
            try:
                job_id = self._submitter()(active.sweep, active.spec, number, params)
            except TaoError as exc:
                study.tell_failed(active.study, number, f"its job could not be submitted: {exc.message}")
                return
            study.set_attr(active.study, number, "job", job_id)
        job = self._jobs.find(job_id)  # read before its series: a job seen ended has all its points saved
        if job is None:
            study.tell_failed(active.study, number, f"its job {job_id} is gone")
            return
        values = self._kpi(job_id, active.spec.kpi)
        reported = study.intermediate(active.study, number)
        new = [(epoch, value) for epoch, value in values if epoch not in reported]
        if new and study.report(active.study, number, new) and not job.status.terminal:
            study.tell_pruned(active.study, number)
            self._stop_job(active, job_id)
            return
        if job.status.terminal:
            self._end(active, number, job, values)

    def _end(self, active: ActiveSweep, number: int, job: Job, values: list[tuple[int, float]]) -> None:
        from tao_server.sweeps import study

        spec = active.spec
        if job.status != JobStatus.succeeded:
            code = f", exit code {job.exit_code}" if job.exit_code is not None else ""
            study.tell_failed(
                active.study, number, f"its job {job.id} ended {job.status.value}{code}" + (f": {job.error}" if job.error else "")
            )
        elif not values:
            study.tell_failed(active.study, number, self._no_kpi(job, spec.kpi))
        else:
            pick = max if spec.direction == "maximize" else min
            study.tell_complete(active.study, number, values[-1][1] if spec.value == "last" else pick(value for _, value in values))

    def _no_kpi(self, job: Job, kpi: str) -> str:
        """Why a trial that ran to its end has no value: the KPI expected, and the names its task wrote."""
        written = sorted(name for name in self._metrics.names(job.id) if name not in SAMPLED)
        if written:
            return f"its task wrote no KPI {kpi!r}; it wrote: {', '.join(written)}"
        why = f" ({job.progress_unavailable})" if job.progress_unavailable else ""
        return f"its task wrote no KPI {kpi!r}; it wrote no KPI at all: no status file was read{why}"

    def _kpi(self, job_id: str, kpi: str) -> list[tuple[int, float]]:
        """The KPI at each epoch, in epoch order (a line with no epoch counts as the one after the last)."""
        points = self._metrics.series(job_id).get(kpi, [])
        by_epoch: dict[int, float] = {}
        for number, point in enumerate(points):
            by_epoch[point.epoch if point.epoch is not None else number] = point.value
        return sorted(by_epoch.items())

    def _stop_job(self, active: ActiveSweep, job_id: str | None) -> None:
        if job_id is None or self._ended(job_id):
            return
        active.stopping.add(job_id)
        if self.cancel is not None:
            self.cancel(job_id)

    def _ended(self, job_id: str) -> bool:
        job = self._jobs.find(job_id)
        return job is None or job.status.terminal

    def _budget_spent(self, active: ActiveSweep) -> str | None:
        """What the sweep says once its GPU-hours budget is spent; None while there is some left (or none was set)."""
        budget = active.spec.gpu_hours
        if budget is None or gpu_seconds(self._jobs.of_sweep(active.sweep.id)) < budget * 3600:
            return None
        return f"the GPU-hours budget of {budget:g} is spent"

    def _finish(self, active: ActiveSweep, state: SweepState, message: str | None) -> None:
        sweep_id = active.sweep.id
        self._store.update(sweep_id, state=state, message=message, finished_at=utcnow())
        active.sweep.state, active.sweep.message = state, message
        with self._lock:
            self._active.pop(sweep_id, None)

    def _submitter(self) -> Submit:
        if self.submit is None:
            raise RuntimeError("the sweep driver was built without a way to submit jobs")
        return self.submit


def gpu_seconds(jobs: list[Job]) -> float:
    """What the jobs have held: each one's GPUs times how long it has run (until now, for one still running)."""
    now = datetime.now(UTC)
    total = 0.0
    for job in jobs:
        if job.started_at is None or not held_gpus(job):
            continue
        started = job.started_at.replace(tzinfo=UTC) if job.started_at.tzinfo is None else job.started_at
        ended = job.finished_at or now
        ended = ended.replace(tzinfo=UTC) if ended.tzinfo is None else ended
        total += held_gpus(job) * max(0.0, (ended - started).total_seconds())
    return total


def held_gpus(job: Job) -> int:
    """How many GPUs the job holds: the devices it was given, or, where the backend allocates them (Slurm), the count it asked for."""
    if job.gpus:
        return len(job.gpus)
    kind, _, value = job.gpu_request.partition(":")
    if kind == "count":
        return int(value or 0)
    return len(value.split(",")) if kind == "ids" and value else 0

"""A sweep's Optuna study, stored in its own journal file in the daemon's data dir.

Optuna's journal storage, not its RDB one: each change to the study is one line appended to the
file (under a lock), so a daemon killed at any point leaves a study that loads with every trial it
had, its last line at worst unfinished (and then left out); it needs no schema of its own to
create or migrate, and no second SQLite database beside the daemon's. Loading replays the file,
which for a sweep's few hundred lines is milliseconds.

Optuna is imported here only: the daemon imports this module when it first has a sweep to run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from tao_server.sweeps.sweep_file import Param, SweepSpec

optuna.logging.set_verbosity(optuna.logging.WARNING)

STATES = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "fail",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
}
MEDIAN_STARTUP_TRIALS = 5  # completed trials before the median pruner judges any


def open_study(path: Path, name: str, spec: SweepSpec) -> optuna.Study:
    """The sweep's study: made the first time, loaded with its trials after that."""
    path.parent.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(path)))
    return optuna.create_study(
        storage=storage,
        study_name=name,
        sampler=_sampler(spec),
        pruner=_pruner(spec),
        direction="maximize" if spec.direction == "maximize" else "minimize",
        load_if_exists=True,
    )


def distributions(spec: SweepSpec) -> dict[str, BaseDistribution]:
    return {param.name: _distribution(param) for param in spec.params}


def _distribution(param: Param) -> BaseDistribution:
    if param.type == "choice":
        return CategoricalDistribution(param.choices)
    low, high = param.low or 0, param.high or 0  # a range's are always set (sweep_file)
    if param.type == "int":
        return IntDistribution(int(low), int(high), log=param.log, step=int(param.step or 1))
    return FloatDistribution(low, high, log=param.log, step=param.step)


def _sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed)
    if spec.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=spec.seed)
    if spec.sampler == "grid":
        return optuna.samplers.GridSampler(grid(spec), seed=spec.seed)
    return optuna.samplers.TPESampler(seed=spec.seed)


def grid(spec: SweepSpec) -> dict[str, list[Any]]:
    """Every value of each parameter: a choice's choices, a range's steps (sweep_file checks each has one)."""
    values: dict[str, list[Any]] = {}
    for param in spec.params:
        if param.type == "choice":
            values[param.name] = list(param.choices)
            continue
        low, high, step = param.low or 0, param.high or 0, param.step or 1
        count = round((high - low) / step) + 1
        values[param.name] = [int(low + i * step) if param.type == "int" else low + i * step for i in range(count)]
    return values


def _pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def state_of(trial: FrozenTrial) -> str:
    return STATES.get(trial.state, trial.state.name.lower())


def running(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.RUNNING


def tell_complete(study: optuna.Study, number: int, value: float) -> None:
    study.tell(number, value, state=TrialState.COMPLETE)


def tell_pruned(study: optuna.Study, number: int) -> None:
    study.tell(number, state=TrialState.PRUNED)


def tell_failed(study: optuna.Study, number: int, reason: str) -> None:
    trial = optuna.trial.Trial(study, _trial_id(study, number))
    trial.set_user_attr("error", reason)
    study.tell(number, state=TrialState.FAIL)


def report(study: optuna.Study, number: int, epochs: list[tuple[int, float]]) -> bool:
    """Report the trial's KPI at each new epoch; whether the pruner says to stop it now."""
    trial = optuna.trial.Trial(study, _trial_id(study, number))
    for epoch, value in epochs:
        trial.report(value, epoch)
    return trial.should_prune()


def intermediate(study: optuna.Study, number: int) -> dict[int, float]:
    """The KPI at each epoch reported so far."""
    return study._storage.get_trial(_trial_id(study, number)).intermediate_values


def set_attr(study: optuna.Study, number: int, key: str, value: Any) -> None:
    optuna.trial.Trial(study, _trial_id(study, number)).set_user_attr(key, value)


def _trial_id(study: optuna.Study, number: int) -> int:
    return study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)

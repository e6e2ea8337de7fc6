"""Backends: where jobs run. The only package that imports an engine's client library.

    base.py        the contract every backend keeps (its docstring says how Docker and Slurm fit it)
    container.py   a job's LaunchSpec read once into the container request every runtime renders
    entrypoint.py  an entrypoint that could not run, named as `docker run` names it
    docker/        the Docker engine's backend, and its settings
    slurm/         the Slurm backend, and its settings

`connect(settings)` builds the backend the settings name. Modules here may import
`tao_server.errors`, `tao_server.access.peer`, tao_common and each other, nothing above them: the
job core depends on the contract, never on an engine. How to add one: docs/backends.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tao_server.backends.base import (
    AdoptedRun,
    AttachableRun,
    Backend,
    ImageStore,
    ImageSummary,
    Interruption,
    LaunchSpec,
    Mount,
    OutputStream,
    Run,
    RunDependency,
    RunExit,
    RunState,
    Terminal,
)
from tao_server.errors import BackendError

if TYPE_CHECKING:
    from tao_server.settings import Settings

__all__ = [
    "AdoptedRun",
    "AttachableRun",
    "Backend",
    "ImageStore",
    "ImageSummary",
    "Interruption",
    "LaunchSpec",
    "Mount",
    "OutputStream",
    "Run",
    "RunDependency",
    "RunExit",
    "RunState",
    "Terminal",
    "connect",
]


def connect(settings: Settings, daemon_id: str) -> Backend:
    """The backend the settings name, answering; BackendError when it does not."""
    backend = _slurm(settings, daemon_id) if settings.backend == "slurm" else _docker(settings, daemon_id)
    try:
        backend.ping()
    except BaseException:
        backend.close()
        raise
    return backend


def _docker(settings: Settings, daemon_id: str) -> Backend:
    from tao_server.backends.docker.docker_backend import DockerBackend

    # Each running job keeps a connection or two open (its output, its wait): room for all of them.
    pool_size = settings.max_running_jobs * 2 + 8
    return DockerBackend(daemon_id, settings.docker.host, pool_size=pool_size, gpu_mode=settings.gpu_mode)


def _slurm(settings: Settings, daemon_id: str) -> Backend:
    from tao_server.backends.slurm.slurm_backend import SlurmBackend, SlurmConfig

    slurm = settings.slurm
    if slurm.shared_dir is None:  # Settings refuses this; a Settings built otherwise gets the same words
        raise BackendError(slurm.missing() or "no --slurm-shared-dir")
    config = SlurmConfig(
        shared_dir=slurm.shared_dir,
        partition=slurm.partition,
        runtime=slurm.runtime,
        login=slurm.login,
        ssh_config=slurm.ssh_config,
        sbatch_args=slurm.sbatch_argv,
        stop_timeout=settings.stop_timeout,
        gpu_mode=settings.gpu_mode,
    )
    return SlurmBackend(daemon_id, config)

"""Backends: where jobs run. The only package that imports an engine's client library.

`base.py` is the contract every backend keeps (see its docstring for how Docker and Slurm fit
it); `container.py` reads a job's LaunchSpec once into the container request every runtime
renders; `docker/` is the Docker engine's backend; `slurm/` holds the Slurm backend's pure parts
(batch scripts, the reading of Slurm's answers). Modules here may import `tao_server.errors`,
`tao_server.access.peer` and each other, nothing above them: the job core depends on the
contract, never on an engine.
"""

from __future__ import annotations

from tao_server.backends.base import (
    AdoptedRun,
    Backend,
    ImageStore,
    ImageSummary,
    LaunchSpec,
    Mount,
    OutputStream,
    Run,
    RunExit,
    RunState,
)

__all__ = [
    "AdoptedRun",
    "Backend",
    "ImageStore",
    "ImageSummary",
    "LaunchSpec",
    "Mount",
    "OutputStream",
    "Run",
    "RunExit",
    "RunState",
    "connect",
]


def connect(daemon_id: str, docker_host: str | None, max_running_jobs: int, gpu_mode: str) -> Backend:
    """The backend the daemon runs jobs on; BackendError when its engine does not answer."""
    from tao_server.backends.docker import DockerBackend

    # Each running job keeps a connection or two open (its output, its wait): room for all of them.
    backend = DockerBackend(daemon_id, docker_host, pool_size=max_running_jobs * 2 + 8, gpu_mode=gpu_mode)
    backend.ping()
    return backend

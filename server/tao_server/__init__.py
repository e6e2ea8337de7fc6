"""The TAO launcher daemon: a REST service that runs TAO Toolkit tasks on a backend (Docker today).

    api/        routes: parse, call a service, shape the answer
    observability/  GPU use per job (NVML), idle GPUs, the Prometheus exporter
    jobs/       the job core: service, runner, store, GPU line, logs, events
    images/     the task manifest, registry logins, shared pulls
    access/     who is calling and what they may do
    backends/   where jobs run: the contract, and Docker and Slurm behind it
    testing/    a fake backend and a real-daemon harness, for tests and benchmarks

Imports point down this list's dependencies: api -> observability, jobs, images, access;
observability -> jobs, access; jobs -> images, access, the backend contract; images -> access,
the backend contract; access and backends -> errors and models. app.py composes them; errors.py, models.py, settings.py and input_checks.py are shared by all;
db.py opens the database, db_watch.py notices it deleted or replaced, disk.py says why a write failed.
cli.py runs the daemon: listeners.py (uvicorn's protocols, told who calls), stopping.py (the stop's deadline).
"""

__version__ = "0.1.0"

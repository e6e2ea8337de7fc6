"""The TAO launcher daemon: a REST service that runs TAO Toolkit tasks on a backend (Docker, or Slurm).

    cli/          `tao-server`: the entry (serve, token, healthcheck); its flags made from the settings models
    app.py        create_app(settings, backend=None): the composition root; the lifespan builds every service once
    settings.py   Settings: every setting, its flag and TAO_* variable, and the rules that tie them together
    models.py     the tables and the API's request and response models
    db.py         the SQLite engine, its check and the Alembic upgrade at start-up
    errors.py     the one error hierarchy: each error's code and HTTP status
    api/          routes: parse, call a service, shape the answer
    ui/           the dashboard: pages, fragments, sign-in links
    jobs/         the job core: service, submission, store, logs, events; runner/, gpus/, progress/
    interactive/  terminals and forwarded ports: access, bounds, the byte pumps
    images/       the task manifest, registry logins, shared pulls
    notify/       notifications of a job's start and end
    observability/ GPU use per job through NVML, idle GPUs, the Prometheus exporter
    system/       what the daemon says of itself (/healthz, `tao info`, the task list)
    access/       who is calling and what they may do; what a request may hold
    backends/     where jobs run: the contract, and Docker and Slurm behind it
    runtime/      the process: sockets, listeners, the service manager, the bounded stop, memory, the database watch
    testing/      a fake backend and engine, a real-daemon harness, a registry, a Slurm cluster: for tests and benchmarks

Imports point down: api and ui -> the services (jobs, interactive, images, notify, observability, system) -> the
runner and access -> the backend contract -> errors and models; runtime serves them all; only
backends/docker imports docker-py. What client and server share comes from tao_common, never
from the client's private modules. app.py composes everything; nothing here reads globals.
"""

__version__ = "0.1.0"

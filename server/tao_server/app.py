"""create_app(settings): the composition root. Builds every service once, wires the routers, and
reconciles the job table with the backend at start-up.

Tests build the same app with `create_app(settings, backend=FakeBackend())` and point the
settings at a temp dir: nothing here reads globals.
"""

from __future__ import annotations

import gc
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from tao_server import __version__, backends, db
from tao_server.access import policy as policy_file
from tao_server.access import tcp_peer
from tao_server.access.admission import Admission
from tao_server.access.mount_pins import MountPins
from tao_server.access.paths import ProtectedPaths
from tao_server.access.tokens import TokenStore
from tao_server.api import (
    credentials,
    docs,
    error_responses,
    images,
    jobs,
    logs,
    metrics,
    notify,
    ports,
    prometheus,
    sweeps,
    system,
    terminal,
)
from tao_server.api import pipelines as pipeline_routes
from tao_server.api.body_limit import BodyLimit
from tao_server.api.deps import Services, get_caller
from tao_server.backends import Backend
from tao_server.images import manifest as task_manifest
from tao_server.images.image_service import ImageService
from tao_server.images.puller import ImagePuller
from tao_server.images.registry_logins import CredentialStore
from tao_server.interactive.session_registry import JobSessions
from tao_server.jobs.events import EventLog
from tao_server.jobs.gpus import devices
from tao_server.jobs.gpus.fair_share import DEFAULT_HALF_LIFE
from tao_server.jobs.gpus.gpu_line import LineRule
from tao_server.jobs.gpus.scheduler import HAND_OFF_SLACK, REPLAN_INTERVAL, GpuScheduler
from tao_server.jobs.log_files import LogStore
from tao_server.jobs.progress.metric_store import MetricStore
from tao_server.jobs.progress.status_locate import SharedFilesystem
from tao_server.jobs.progress.tracker import ProgressTracker
from tao_server.jobs.runner import JobRunner
from tao_server.jobs.service import JobService
from tao_server.jobs.store import JobStore
from tao_server.notify import wiring as notify_wiring
from tao_server.observability.exporter import DaemonState, Exporter
from tao_server.observability.gpu_use import GpuUse, Sampling, start_sampling
from tao_server.runtime.db_watch import DatabaseWatch
from tao_server.settings import Settings
from tao_server.sweeps.driver import SweepDriver
from tao_server.sweeps.sweep_service import SweepService
from tao_server.sweeps.sweep_store import SweepStore
from tao_server.system.system_service import SystemService, loopback_http
from tao_server.ui import routes as ui
from tao_server.ui.guard import BrowserGuard
from tao_server.ui.sign_in import UiSessions
from tao_server.workflows.pipeline_ends import PipelineEnds
from tao_server.workflows.pipeline_service import PipelineService

log = logging.getLogger(__name__)
LoopbackOwner = Callable[[tuple[str, int], tuple[str, int]], int | None]


def create_app(
    settings: Settings,
    backend: Backend | None = None,
    addresses: list[str] | None = None,
    database: Engine | None = None,
    loopback_owner: LoopbackOwner = tcp_peer.loopback_owner,
    nvml: Any = None,
) -> FastAPI:
    """The daemon's app. The manifest and policy are read here so broken ones fail before anything listens.

    Without a `backend`, the lifespan connects to the one the settings name; without a `database`
    (tao-server passes the one it checked: db.open_checked), it opens and upgrades the settings' own.
    `loopback_owner` names who redeems a dashboard link over loopback TCP. `nvml`: a stand-in for
    nvidia-ml-py's pynvml (tests); None imports pynvml where the host has GPUs.
    """
    manifest = task_manifest.load(settings.manifest_path())
    policy = policy_file.load(settings.policy)
    wiring = _Wiring(backend, addresses or [], database, loopback_owner, nvml)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await run_in_threadpool(_start, settings, manifest, policy, wiring)
        app.state.services = services
        # Everything built so far lives as long as the process: keep it out of the collector's
        # full passes, which otherwise walk every framework object and stall the answers for tens of ms.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            services.runner.shutdown()
            services.sweep_driver.shutdown()
            services.sender.stop()
            services.progress.shutdown()
            if services.gpu_use is not None:
                services.gpu_use.shutdown()
            services.sessions.close()
            services.backend.close()
            # The last connection to close folds SQLite's write-ahead log into the database file,
            # so a stopped daemon leaves one file to back up or copy, not three.
            services.database.dispose()

    app = FastAPI(
        title="TAO launcher",
        version=__version__,
        summary="Runs TAO Toolkit tasks in Docker containers and streams their logs.",
        lifespan=lifespan,
        # Served by api/docs.py instead, to known callers only.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    error_responses.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(BrowserGuard)
    # Every route but /healthz knows its caller, and refuses TCP callers without a valid token.
    authenticated = [Depends(get_caller)]
    for module in (jobs, pipeline_routes, sweeps, metrics, logs, terminal, ports, images, credentials, notify, system, docs):
        app.include_router(module.router, dependencies=authenticated, responses=error_responses.responses(401))
    app.include_router(system.health)
    # Admins and scrape tokens, which no other route takes: the route names its caller with a scheme of its own.
    app.include_router(prometheus.router)
    # The dashboard: its pages hold no data and need no caller; its fragments and actions name theirs.
    app.include_router(ui.router)
    app.mount("/ui/static", ui.static_files(), name="ui-static")
    app.openapi = lambda: docs.document(app)  # type: ignore[method-assign]
    return app


def end_streams(app: FastAPI) -> None:
    """The daemon begins to stop: every log stream and session ends now, so none is still open when
    the connections' grace runs out, to be cancelled (and logged as such) instead."""
    services: Services | None = getattr(app.state, "services", None)
    if services is not None:
        services.jobs.stop_following()
        services.sessions.close()


def daemon_id(data_dir: Path) -> str:
    """A stable id for this data dir; the backend marks runs with it so each daemon only adopts its own."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "daemon-id"
    if not path.exists():
        path.write_text(uuid.uuid4().hex + "\n")
    return path.read_text().strip()


@dataclass(frozen=True)
class _Wiring:
    """What create_app's caller hands the lifespan ready-made; None: the lifespan makes it from the settings."""

    backend: Backend | None
    addresses: list[str]
    database: Engine | None
    loopback_owner: LoopbackOwner
    nvml: Any


def _start(settings: Settings, manifest: task_manifest.Manifest, policy: policy_file.Policy, wiring: _Wiring) -> Services:
    addresses = wiring.addresses
    engine = wiring.database or _open_database(settings)
    database = DatabaseWatch(settings.db_path)  # the file just opened: one deleted or replaced later is noticed
    backend = wiring.backend if wiring.backend is not None else backends.connect(settings, daemon_id(settings.data_dir))
    store = JobStore(engine, database)
    logs_store, events = LogStore(settings.logs_dir), EventLog(settings.logs_dir)
    credentials = CredentialStore(settings.data_dir / "credentials.json", _secret(settings))
    puller = ImagePuller(backend.images, credentials) if backend.images is not None else None
    scheduler = _gpu_line(settings, policy, backend)
    pins = MountPins(settings.data_dir / "mounts", backend.mount_namespace_pid())
    pins.sweep()
    tokens, metrics = TokenStore(engine), MetricStore(store)
    notifications = notify_wiring.build(settings, policy, store, events, tokens, addresses)
    # On a cluster the daemon sees a job's files only where the nodes share them with its host.
    shared = SharedFilesystem(str(settings.slurm.shared_dir)) if settings.backend == "slurm" and settings.slurm.shared_dir else None
    progress = ProgressTracker(metrics, events, shared)
    gpu_use = _gpu_use(settings, scheduler, metrics, events, wiring.nvml)
    runner = JobRunner(
        store,
        backend,
        logs_store,
        events,
        puller,
        scheduler,
        settings.max_running_jobs,
        settings.stop_timeout,
        pins=pins,
        progress=progress,
        observer=notifications.observer,
        retry_backoff=settings.retry_backoff,
    )
    admission = Admission(policy, _protected_paths(settings, backend))
    job_service = JobService(
        store,
        runner,
        logs_store,
        events,
        manifest,
        scheduler,
        admission,
        settings.pull_policy,
        settings.limits,
        backend.places,
        backend.attaches,
        notify=notifications.service,
        gpu_condition=gpu_use.condition if gpu_use is not None else None,
    )
    sweep_driver = _sweep_driver(settings, store, metrics, runner)
    image_service = ImageService(manifest, backend.images, puller, credentials) if backend.images is not None and puller else None
    services = Services(
        settings=settings,
        database=engine,
        backend=backend,
        runner=runner,
        progress=progress,
        jobs=job_service,
        pipelines=_pipelines(job_service, store, runner, notifications),
        sweeps=SweepService(SweepStore(store), job_service, store, sweep_driver),
        sweep_driver=sweep_driver,
        sessions=JobSessions(job_service, runner, backend.attaches, settings.max_sessions_per_user, settings.max_sessions_per_job),
        images=image_service,
        tokens=tokens,
        system=SystemService(settings, manifest, backend, job_service, image_service, runner, database, datetime.now(UTC), addresses),
        ui=UiSessions(),
        notify=notifications.service,
        sender=notifications.sender,
        exporter=_exporter(backend, store, scheduler, progress, gpu_use),
        gpu_use=gpu_use,
        ui_address=loopback_http(addresses),
        loopback_owner=wiring.loopback_owner,
    )
    progress.resume(store.active())  # before the runner records the ends of jobs that ended meanwhile
    runner.reconcile()
    sweep_driver.resume()  # after the reconcile: the trials' jobs that ended meanwhile have their ends
    notifications.sender.start()
    progress.start()
    if gpu_use is not None:
        gpu_use.start()
    return services


def _pipelines(jobs: JobService, store: JobStore, runner: JobRunner, notifications: notify_wiring.Notifications) -> PipelineService:
    """The pipelines' service, and the listener that tells of a pipeline's end once its last step ended."""
    pipelines = PipelineService(jobs, store)
    runner.on_end(PipelineEnds(pipelines, store, notifications.observer, notifications.pipeline_link).step_ended)
    return pipelines


def _open_database(settings: Settings) -> Engine:
    """The settings' database, upgraded to this release's schema."""
    engine = db.make_engine(settings.db_path)
    db.upgrade(engine)
    return engine


def _sweep_driver(settings: Settings, store: JobStore, metrics: MetricStore, runner: JobRunner) -> SweepDriver:
    """The thread that runs sweeps (started with the first one), woken by each job's end."""
    driver = SweepDriver(SweepStore(store), store, metrics, settings.data_dir)
    runner.on_end(driver.wake)
    return driver


def _gpu_line(settings: Settings, policy: policy_file.Policy, backend: Backend) -> GpuScheduler:
    """The daemon's GPU line; a backend that allocates GPUs itself (a cluster's) leaves it empty."""
    return GpuScheduler(
        devices.inventory(settings.gpus) if "gpus" not in backend.places else [],
        LineRule(settings.gpu_line),
        half_life=float(policy.half_life or DEFAULT_HALF_LIFE),
        # A running job frees its devices at the latest its limit, the stop timeout and the hand-off after its grant.
        grace=settings.stop_timeout + HAND_OFF_SLACK,
        replan_interval=REPLAN_INTERVAL,
    )


def _exporter(backend: Backend, store: JobStore, scheduler: GpuScheduler, progress: ProgressTracker, gpu_use: GpuUse | None) -> Exporter:
    """GET /metrics's registry, reading each of these at every scrape."""
    last = gpu_use.last if gpu_use is not None else None
    return Exporter(DaemonState(__version__, backend.name, store.counts, scheduler.holders, progress.ratios, last))


def _gpu_use(settings: Settings, scheduler: GpuScheduler, metrics: MetricStore, events: EventLog, nvml: Any) -> GpuUse | None:
    """The sampler of the daemon's GPUs (not started yet); None where NVML can read none of them."""
    sampling = Sampling(settings.gpu_sample_interval, settings.gpu_idle_threshold, settings.gpu_idle_after)
    return start_sampling(scheduler.inventory, scheduler.holders, metrics, events, sampling, nvml, settings.nvidia_visible_devices)


def _protected_paths(settings: Settings, backend: Backend) -> ProtectedPaths:
    """The system's paths, the engine's data root and socket, and the daemon's data dir: never job mounts."""
    trees, files = backend.protected_paths()
    return ProtectedPaths(extra_trees=(*trees, str(settings.data_dir)), extra_files=files, host_trees=settings.host_trees)


def _secret(settings: Settings) -> str | None:
    return settings.ngc_api_key.get_secret_value() if settings.ngc_api_key is not None else None

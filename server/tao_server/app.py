"""create_app(settings): the routers, and a lifespan that starts the runner and reconciles with Docker."""

from __future__ import annotations

import gc
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from tao_server import __version__, db, gpus
from tao_server import manifest as manifest_loader
from tao_server import policy as policy_loader
from tao_server.api import credentials as credentials_routes
from tao_server.api import errors, images, jobs, logs, system
from tao_server.api.deps import Services, get_caller
from tao_server.credentials import CredentialStore
from tao_server.events import EventLog
from tao_server.executors import Executor
from tao_server.images import ImagePuller
from tao_server.launch_config import ProtectedPaths
from tao_server.policy import Policy
from tao_server.jobs import JobService
from tao_server.logs import LogStore
from tao_server import mount_pins
from tao_server.mount_pins import MountPins
from tao_server.runner import ENGINE_ERRORS, JobRunner
from tao_server.scheduler import GpuScheduler
from tao_server.settings import Settings
from tao_server.store import JobStore
from tao_server.tokens import TokenStore

log = logging.getLogger(__name__)


def create_app(settings: Settings, executor: Executor | None = None, addresses: list[str] | None = None) -> FastAPI:
    """The daemon's app. The manifest and policy are read here so broken ones fail before anything listens."""
    manifest = manifest_loader.load(settings.manifest_path())
    policy = policy_loader.load(settings.policy)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await run_in_threadpool(_start, settings, manifest, policy, executor, addresses or [])
        app.state.services = services
        # Everything built so far lives as long as the process: keep it out of the collector's
        # full passes, which otherwise walk every framework object and stall requests for tens of ms.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            services.runner.shutdown()
            services.executor.close()

    app = FastAPI(
        title="TAO launcher",
        version=__version__,
        summary="Runs TAO Toolkit tasks in Docker containers and streams their logs.",
        lifespan=lifespan,
    )
    errors.install(app)
    # Every route but /healthz knows its caller, and refuses TCP requests without a valid token.
    authenticated = [Depends(get_caller)]
    app.include_router(jobs.router, dependencies=authenticated)
    app.include_router(logs.router, dependencies=authenticated)
    app.include_router(images.router, dependencies=authenticated)
    app.include_router(credentials_routes.router, dependencies=authenticated)
    app.include_router(system.router, dependencies=authenticated)
    app.include_router(system.health)
    return app


def _start(
    settings: Settings, manifest: manifest_loader.Manifest, policy: Policy, executor: Executor | None, addresses: list[str]
) -> Services:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = db.make_engine(settings.db_path)
    db.upgrade(engine)
    daemon_id = _daemon_id(settings)
    if executor is None:
        from tao_server.executors.docker import DockerExecutor

        executor = DockerExecutor(daemon_id, settings.docker_host, pool_size=settings.max_running_jobs * 2 + 8, gpu_mode=settings.gpu_mode)
    store = JobStore(engine)
    logs_store = LogStore(settings.logs_dir)
    events = EventLog(settings.logs_dir)
    credentials = CredentialStore(settings.data_dir / "credentials.json")
    puller = ImagePuller(executor, credentials, ENGINE_ERRORS)
    inventory = gpus.inventory(settings.gpus)
    pins = MountPins(settings.data_dir / "mounts", mount_pins.engine_pid(settings.engine_socket))
    pins.sweep()
    runner = JobRunner(
        store, executor, logs_store, events, puller, GpuScheduler(inventory), settings.max_running_jobs, settings.stop_timeout,
        pins=pins,
    )
    services = Services(
        settings=settings,
        manifest=manifest,
        executor=executor,
        logs=logs_store,
        runner=runner,
        jobs=JobService(
            store, runner, logs_store, manifest, inventory, settings.pull_policy, _protected_paths(settings, executor), policy
        ),
        events=events,
        credentials=credentials,
        puller=puller,
        tokens=TokenStore(engine),
        daemon_id=daemon_id,
        started_at=datetime.now(timezone.utc),
        addresses=addresses,
    )
    runner.reconcile()
    return services


def _protected_paths(settings: Settings, executor: Executor) -> ProtectedPaths:
    """The system's paths, the engine's data root and the daemon's data dir: never job mounts."""
    try:
        engine_root = executor.data_root()
    except ENGINE_ERRORS:
        engine_root = "/var/lib/docker"
    engine_socket = settings.engine_socket
    return ProtectedPaths(extra_trees=(engine_root, str(settings.data_dir)), extra_files=(engine_socket,) if engine_socket else ())


def _daemon_id(settings: Settings) -> str:
    """A stable id for this data dir; containers carry it so each daemon only adopts its own."""
    path = settings.data_dir / "daemon-id"
    if not path.exists():
        path.write_text(uuid.uuid4().hex + "\n")
    return path.read_text().strip()

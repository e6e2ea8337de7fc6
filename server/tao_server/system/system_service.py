"""What `tao info`, `tao daemon status`, `/healthz` and `GET /v1/tasks` show: the daemon, its database, its manifest, the backend, GPUs and images."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from tao_server import __version__
from tao_server.access.caller import Caller
from tao_server.access.paths import is_loopback
from tao_server.backends import Backend
from tao_server.errors import BackendError
from tao_server.images.image_service import ImageService
from tao_server.images.manifest import Manifest, TaskImage
from tao_server.jobs.runner import JobRunner
from tao_server.jobs.service import JobService
from tao_server.models import TaskPublic, TasksPublic
from tao_server.runtime.db_watch import DatabaseWatch
from tao_server.settings import Settings, environment


class SystemService:
    def __init__(
        self,
        settings: Settings,
        manifest: Manifest,
        backend: Backend,
        jobs: JobService,
        images: ImageService | None,
        runner: JobRunner,
        database: DatabaseWatch,
        started_at: datetime,
        addresses: list[str],
    ) -> None:
        self._settings = settings
        self._manifest = manifest
        self._backend = backend
        self._jobs = jobs
        self._images = images
        self._runner = runner
        self._health = runner.health
        self._database = database
        self._started_at = started_at
        self._addresses = addresses
        self._dashboard = _dashboard(addresses)
        # As the daemon was started: `tao` compares them with its caller's, for the daemon it started.
        self._environment = environment()
        self._cwd = os.getcwd()

    def health(self) -> dict[str, str]:
        """/healthz: the daemon answers; "failing" once its database file is gone (it takes no new work);
        "degraded" while its backend does not answer (jobs wait for it)."""
        if (lost := self._database.problem()) is not None:
            return {"status": "failing", "database": lost}
        outage = self._health.describe()
        return {"status": "ok"} if outage is None else {"status": "degraded", "backend": f"{self._backend.name} {outage}"}

    def tasks(self) -> TasksPublic:
        manifest = self._manifest
        return TasksPublic(
            manifest_source=manifest.source,
            toolkit_version=manifest.toolkit_version,
            interactive=self._backend.attaches,
            groups=manifest.groups,
            tasks=[
                TaskPublic(group=spec.group, name=spec.name, image=spec.image.reference, subtasks=list(spec.subtasks))
                for spec in manifest.tasks.values()
            ],
        )

    def info(self, caller: Caller, verbose: bool) -> dict[str, Any]:
        """The daemon, its manifest, the backend and the GPUs. Asks the backend: not for hot paths."""
        manifest = self._manifest
        body: dict[str, Any] = {
            "daemon": self._daemon(caller),
            "manifest": {
                "source": manifest.source,
                "format_version": manifest.format_version,
                "toolkit_version": manifest.toolkit_version,
                "groups": manifest.groups,
            },
            "gpu_mode": self._settings.gpu_mode,
            "gpus": self._jobs.gpu_view(caller),
        }
        try:
            body["engine"] = self._backend.describe()
        except BackendError as exc:
            body["engine"] = {"error": exc.message}
        if (outage := self._health.describe()) is not None:
            body["engine"]["error"] = f"the {self._backend.name} backend is {outage}; running jobs wait for it"
        body["images"] = [self._image(image, verbose) for image in manifest.images()]
        return body

    def process(self, caller: Caller) -> dict[str, Any]:
        """`GET /v1/daemon`, from memory: version, listeners, dashboard and manifest; for admins (the daemon's own
        user, root) also its pid, data dir, how it was started, its log and the TAO_* environment it started with."""
        settings = self._settings
        daemon: dict[str, Any] = {
            "version": __version__,
            "addresses": self._addresses,
            "dashboard": self._dashboard,
            "started_at": self._started_at.isoformat(),
            "manifest": self._manifest.source,
        }
        if caller.admin:
            by_tao = settings.started_by == "tao"
            daemon.update(
                pid=os.getpid(),
                data_dir=str(settings.data_dir),
                started_by=settings.started_by,
                # Where `tao` sends the output of the daemons it starts (tao_client/local_daemon.py).
                log=str(settings.data_dir / "daemon.log") if by_tao else None,
                service_manager="systemd" if settings.notify_socket else None,
                environment=self._environment,
                cwd=self._cwd,
            )
        return daemon

    def _daemon(self, caller: Caller) -> dict[str, Any]:
        """The daemon; the caller's own job counts (everyone's for an admin), its process and data dir for admins only."""
        daemon: dict[str, Any] = {
            "version": __version__,
            "addresses": self._addresses,
            "dashboard": self._dashboard,
            "started_at": self._started_at.isoformat(),
            "jobs": self._jobs.counts(caller),
        }
        if (lost := self._database.problem()) is not None:
            daemon["database_error"] = lost
        if caller.admin:
            daemon.update(pid=os.getpid(), data_dir=str(self._settings.data_dir))
            unaccounted = [{"run_id": run.run_id, "job_id": run.job_id, "state": run.state} for run in self._runner.unaccounted]
            if unaccounted:
                daemon["unaccounted_runs"] = unaccounted
        return daemon

    def _image(self, image: TaskImage, verbose: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"reference": image.reference, "tasks": self._manifest.tasks_of(image)}
        if verbose:
            local = self._images.local(image.reference) if self._images is not None else None
            entry["local"] = {"id": local.id, "size": local.size, "digests": local.digests} if local is not None else None
        return entry


def loopback_http(addresses: list[str]) -> str | None:
    """The first plain HTTP listener on loopback: where the dashboard is served, and `tao ui`'s links point."""
    for address in addresses:
        host = address.removeprefix("http://").rpartition(":")[0].strip("[]")
        if address.startswith("http://") and is_loopback(host):
            return address
    return None


def _dashboard(addresses: list[str]) -> str | None:
    address = loopback_http(addresses)
    return f"{address}/ui/" if address is not None else None

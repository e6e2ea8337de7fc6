"""An in-memory backend: runs that behave like the sample toolkit's tasks, in threads, with no engine.

For tests of the job core and the API in process (`create_app(settings, backend=FakeBackend())`),
and the second member of the backend contract suite beside the Docker backend. It keeps the
contract of backends/base.py exactly: output from an offset, exit codes with `docker run`'s
meaning, cancel with a grace period, adoption after a restart. Its runs live on a FakeEngine
(fake_engine.py), which says what the programs do and the knobs tests turn.

Once a backend is closed, the handles it gave out go still, as a stopped daemon's threads would:
their output and wait never return, so only the new daemon records what happens next.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, NoReturn

from tao_server.backends import AdoptedRun, ImageSummary, LaunchSpec, OutputStream, RunExit, RunState
from tao_server.errors import LAUNCHER_FAILURE, ImageMissing, LaunchFailure, LoginRefused
from tao_server.testing.fake_engine import KILLED, SAFETY_TIMEOUT, FakeEngine, FakeProcess, execute


class FakeBackend:
    name = "fake"

    def __init__(self, engine: FakeEngine | None = None, daemon_id: str = "fake-daemon", places: frozenset[str] = frozenset()) -> None:
        self.engine = engine or FakeEngine()
        self.daemon_id = daemon_id
        # What it places itself, as a cluster backend would ("gpus", "nodes", "time"); the specs it got show the rest.
        self.places = places
        self.attaches = False  # its runs are processes of this daemon's own, with no terminal
        self.specs: list[LaunchSpec] = []
        self.images = FakeImages(self.engine)
        self.closed = threading.Event()

    def prepare(self, spec: LaunchSpec) -> FakeRun:
        self.engine.answer()
        self.specs.append(spec)
        if spec.image not in self.engine.images:
            raise ImageMissing(spec.image)
        return FakeRun(self, self.engine.create(self.daemon_id, spec))

    def adopt(self) -> list[AdoptedRun]:
        self.engine.answer()
        return [self._adopted(p) for p in self.engine.owned_by(self.daemon_id)]

    def find(self, job_id: str) -> AdoptedRun | None:
        self.engine.answer()
        return next((self._adopted(p) for p in self.engine.owned_by(self.daemon_id) if p.spec.job_id == job_id), None)

    def ping(self) -> None:
        self.engine.answer()

    def _adopted(self, process: FakeProcess) -> AdoptedRun:
        run = FakeRun(self, process)
        if process.over:
            return AdoptedRun(process.spec.job_id, run, "exited", run.end().exit_code)
        states: dict[str, RunState] = {"created": "prepared", "pending": "active", "running": "active"}
        return AdoptedRun(process.spec.job_id, run, states[process.state], None)

    def describe(self) -> dict[str, Any]:
        self.engine.answer()
        return {"backend": self.name, "version": "1", "api_version": "1", "os": "linux", "arch": "fake"}

    def protected_paths(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return (), ()

    def mount_namespace_pid(self) -> int | None:
        return None

    def close(self) -> None:
        """Runs go on: the engine, not the daemon, owns them. This backend's handles go still."""
        self.closed.set()
        for process in self.engine.owned_by(self.daemon_id):
            with process.changed:
                process.changed.notify_all()


class FakeRun:
    def __init__(self, backend: FakeBackend, process: FakeProcess) -> None:
        self._backend = backend
        self._engine = backend.engine
        self._process = process

    @property
    def run_id(self) -> str:
        return self._process.run_id

    def start(self) -> None:
        self._engine.answer()
        process = self._process
        with process.changed:
            if process.state != "created":
                raise LaunchFailure(f"run {process.run_id[:12]} was already started")
            process.state = "running" if self._engine.start_gate.is_set() else "pending"
            process.ran = process.state == "running"
        threading.Thread(target=execute, args=(self._engine, process), name=f"fake-{process.spec.job_id}", daemon=True).start()

    def wait_running(self) -> bool:
        self._engine.answer()
        process = self._process
        self._wait_for(lambda: process.state not in ("created", "pending"))
        return process.ran

    def output(self, offset: int = 0) -> OutputStream:
        self._engine.answer()
        return _Output(self._engine, self._process, offset, self._backend.closed)

    def wait(self) -> RunExit:
        self._engine.answer()
        self._wait_for(lambda: self._process.over)
        return self.end()

    def _wait_for(self, condition: Callable[[], bool]) -> None:
        """Block until `condition` holds; BackendUnavailable in an outage; forever once the backend is closed."""
        process = self._process
        with process.changed:
            process.changed.wait_for(lambda: condition() or self._backend.closed.is_set() or self._engine.down)
        if self._backend.closed.is_set():
            _go_still()
        self._engine.answer()

    def end(self) -> RunExit:
        """The run's end as the daemon sees it; a cut run's is its node's failure, whatever its program does next."""
        process = self._process
        with process.changed:
            if process.cut:
                return RunExit(LAUNCHER_FAILURE, interrupted=process.interrupted, cut=True)
            exit_code = process.exit_code if process.exit_code is not None or not process.ran else KILLED
            return RunExit(exit_code, process.failure, process.interrupted)

    def cancel(self, grace: float) -> None:
        """SIGTERM, then SIGKILL once `grace` seconds pass; returns when the run has exited."""
        self._engine.answer()
        process = self._process
        with process.changed:
            if process.state == "created":
                return
            if process.state == "pending":  # nothing ran: it leaves the queue
                process.state, process.exit_code = "exited", None
                process.changed.notify_all()
                return
            process.terminate.set()
            if process.changed.wait_for(lambda: process.state == "exited", timeout=grace):
                return
        process.signal_kill()

    def condition(self) -> str | None:
        return "pending in the fake engine's queue" if self._process.state == "pending" else None

    def expected_start(self) -> datetime | None:
        return self._engine.expected_start if self._process.state == "pending" else None

    def release(self) -> None:
        """Remove the run, killing it if it still runs (`docker rm -f`)."""
        self._engine.answer()
        self._process.signal_kill()
        self._engine.forget_run(self._process.run_id)


class _Output:
    def __init__(self, engine: FakeEngine, process: FakeProcess, offset: int, backend_closed: threading.Event) -> None:
        self._engine = engine
        self._process = process
        self._position = offset
        self._closed = False
        self._backend_closed = backend_closed
        # A stream opened after its run was cut reads on until the program is gone; one opened before ends at the cut.
        self._until_exit = process.cut

    def close(self) -> None:
        with self._process.changed:
            self._closed = True
            self._process.changed.notify_all()

    def __iter__(self) -> Iterator[bytes]:
        process = self._process
        while True:
            with process.changed:
                process.changed.wait_for(
                    lambda: (
                        self._closed
                        or self._backend_closed.is_set()
                        or self._engine.down
                        or len(process.output) > self._position
                        or self._over()
                    )
                )
                if self._closed:
                    return
            if self._backend_closed.is_set():
                _go_still()
            self._engine.answer()  # the connection to an engine out of reach breaks
            with process.changed:
                chunk = bytes(process.output[self._position :])
                if not chunk and self._over():
                    return
            self._position += len(chunk)
            if chunk:
                yield chunk

    def _over(self) -> bool:
        return self._process.state == "exited" or (self._process.cut and not self._until_exit)


def _go_still() -> NoReturn:
    """A closed backend's thread: it never returns, as a stopped daemon's threads never run again."""
    while True:
        threading.Event().wait()


class FakeImages:
    def __init__(self, engine: FakeEngine) -> None:
        self._engine = engine

    def registry_of(self, image: str) -> str:
        first, slash, _ = image.partition("/")
        return first if slash and ("." in first or ":" in first or first == "localhost") else "docker.io"

    def summary(self, image: str) -> ImageSummary | None:
        self._engine.answer()
        if image not in self._engine.images:
            return None
        return ImageSummary(id="sha256:" + hashlib.sha256(image.encode()).hexdigest(), size=1000 * len(image), digests=[])

    def pull(self, image: str, login: tuple[str, str] | None) -> Iterator[dict[str, Any]]:
        self._engine.answer()
        registry = self.registry_of(image)
        if image in self._engine.missing_images:
            raise LaunchFailure(f"image {image} was not found in registry {registry}; check the name, tag or digest in the task manifest")
        accepted = self._engine.logins.get(registry)
        if accepted is not None and login != accepted:
            raise LaunchFailure(f"registry {registry} refused access to {image} (unauthorized); log in with `tao login {registry}`")
        self._engine.pulled.append((image, login))
        yield {"status": f"Pulling from {image}", "id": "1"}
        yield {"status": "Downloading", "id": "layer", "progressDetail": {"current": 1, "total": 2}}
        if not self._engine.pull_gate.wait(SAFETY_TIMEOUT):
            raise LaunchFailure(f"the fake pull of {image} was never let through")
        yield {"status": "Pull complete", "id": "layer"}
        self._engine.images.add(image)

    def check_login(self, registry: str, username: str, password: str) -> None:
        self._engine.answer()
        if self._engine.logins.get(registry, (username, password)) != (username, password):
            raise LoginRefused(f"registry {registry} refused the login (unauthorized); check the username and password", field="password")

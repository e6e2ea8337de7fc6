"""An in-memory backend: runs that behave like the sample toolkit's tasks, in threads, with no engine.

For tests of the job core and the API in process (`create_app(settings, backend=FakeBackend())`),
and the second member of the backend contract suite beside the Docker backend. It keeps the
contract of backends/base.py exactly: output from an offset, exit codes with `docker run`'s
meaning, cancel with a grace period, adoption after a restart.

A `FakeEngine` outlives the backends that use it, as a Docker engine outlives the daemon: a new
`FakeBackend` on the same engine is a restarted daemon, and adopts what the old one left. Once a
backend is closed, the handles it gave out go still, as a stopped daemon's threads would: their
output and wait never return, so only the new daemon records what happens next.

Every program name but `missing` (127) and `not_executable` (126) runs the sample task script
(examples/sample-toolkit/task.sh) for `<task> <subtask> [args...]`: argv, exit N, stderr, id,
env NAME..., lines N, sleep S (answers SIGTERM), stubborn S (ignores it), ticks N S (a line every S
seconds, N times; answers SIGTERM). `engine.outage()` takes the engine out of reach: every call and
every output stream being read raises BackendUnavailable while the runs go on. One subtask exists
only here: `hold NAME` prints "holding NAME", waits until the test calls `engine.release(NAME)`,
then prints "released NAME" and exits 0 (or answers SIGTERM with 143 while it waits).

What a cluster does behind the daemon's back, for the contract's cases of ends that are not the
task's own: `engine.start_gate` cleared holds started runs `pending` (a backend made with
`places={"queue"}` reads them `queued`); `engine.cancel_outside(job_id)` cancels a run as
`scancel` would, pending or running; `engine.fail_node(job_id)` ends a run as a node failure
would, its program running on and printing, cut off, until `engine.node_back()` stops it.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn

from tao_server.backends import AdoptedRun, ImageSummary, Interruption, LaunchSpec, OutputStream, RunExit, RunState
from tao_server.errors import CANNOT_EXECUTE, LAUNCHER_FAILURE, NOT_FOUND, BackendUnavailable, ImageMissing, LaunchFailure, LoginRefused

KILLED = 137  # 128 + SIGKILL, as the engine reports a killed task
TERMINATED = 143  # 128 + SIGTERM, as the sample task exits when it answers SIGTERM
_SAFETY_TIMEOUT = 600.0  # no fake program runs longer than this, whatever a test forgets


@dataclass
class _Process:
    """One run's state on the fake engine; guarded by `changed`."""

    run_id: str
    daemon_id: str
    spec: LaunchSpec
    changed: threading.Condition = field(default_factory=threading.Condition)
    state: str = "created"  # created, pending, running, exited
    output: bytearray = field(default_factory=bytearray)
    exit_code: int | None = None
    failure: str | None = None
    ran: bool = False
    interrupted: Interruption | None = None  # who ended it, when not the program itself
    cut: bool = False  # its node failed: the run has ended, the program runs on until the node is back
    terminate: threading.Event = field(default_factory=threading.Event)
    kill: threading.Event = field(default_factory=threading.Event)

    @property
    def over(self) -> bool:
        """Whether the run has ended, as the daemon sees it: the program exited, or its node failed."""
        return self.state == "exited" or self.cut

    def write(self, data: bytes) -> None:
        with self.changed:
            if self.state == "exited":  # a killed program's last words go nowhere
                return
            self.output += data
            self.changed.notify_all()

    def signal_kill(self) -> None:
        self.kill.set()
        self.terminate.set()  # wakes a program asleep on SIGTERM; its exit code is already KILLED
        self.exit(KILLED if self.ran else None)

    def exit(self, code: int | None, failure: str | None = None) -> None:
        with self.changed:
            if self.state == "exited":
                return
            self.state, self.exit_code, self.failure = "exited", code, failure
            self.changed.notify_all()


class FakeEngine:
    """The runs and images that outlive a daemon; the knobs tests turn."""

    def __init__(self, images: Iterable[str] = ()) -> None:
        self.images = set(images)
        self.launched: list[LaunchSpec] = []  # every spec a backend prepared, in order
        self.pulled: list[tuple[str, tuple[str, str] | None]] = []  # (image, login) of each pull
        self.logins: dict[str, tuple[str, str]] = {}  # registry -> the (username, password) it accepts
        self.missing_images: set[str] = set()  # images the registry does not have
        self.pull_gate = threading.Event()  # pulls wait for it: cleared, a test controls when they finish
        self.pull_gate.set()
        self.start_gate = threading.Event()  # cleared, started runs wait `pending`, as in a cluster's queue
        self.start_gate.set()
        self._runs: dict[str, _Process] = {}
        self._down = threading.Event()
        self._gates: dict[str, threading.Event] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def release(self, name: str) -> None:
        """Let the programs holding `name` (`<task> hold NAME`) finish with exit 0."""
        self._gate(name).set()

    def running(self) -> list[str]:
        """The job ids of the runs that are running now."""
        with self._lock:
            return [p.spec.job_id for p in self._runs.values() if p.state == "running"]

    def runs(self) -> list[str]:
        """The job ids of the runs the engine still has, in any state."""
        with self._lock:
            return [p.spec.job_id for p in self._runs.values()]

    @contextmanager
    def outage(self) -> Iterator[None]:
        """The engine out of reach for the block: calls fail, streams being read break, runs go on."""
        self._down.set()
        with self._lock:
            processes = list(self._runs.values())
        for process in processes:
            with process.changed:
                process.changed.notify_all()
        try:
            yield
        finally:
            self._down.clear()

    def answer(self) -> None:
        """BackendUnavailable while the engine is out of reach, as a connection refused would be."""
        if self._down.is_set():
            raise BackendUnavailable("the fake engine does not answer")

    @property
    def down(self) -> bool:
        return self._down.is_set()

    def remove(self, job_id: str) -> None:
        """Kill and remove the job's run behind every daemon's back, as `docker rm -f` by someone else would."""
        with self._lock:
            found = [p for p in self._runs.values() if p.spec.job_id == job_id]
        for process in found:
            process.signal_kill()
            self._remove(process.run_id)

    def cancel_outside(self, job_id: str) -> None:
        """Cancel the job's run behind the daemon's back, as `scancel` would: a pending one never runs, a running one gets SIGTERM."""
        why = Interruption("cancelled", "cancelled outside the launcher (by the fake engine)")
        for process in self._of(job_id):
            with process.changed:  # a reentrant lock: exit() takes it again
                process.interrupted = why
                if process.state == "pending":
                    process.exit(None)
                else:
                    process.terminate.set()

    def fail_node(self, job_id: str) -> None:
        """The job's node fails: its run ends, `error`, while its program runs on, cut off, until `node_back()`."""
        for process in self._of(job_id):
            with process.changed:
                if process.state != "running":
                    continue
                process.cut = True
                process.interrupted = Interruption("error", "its node failed (the fake engine's)")
                process.changed.notify_all()

    def node_back(self) -> None:
        """The failed node is back: what still runs there of a cut run gets SIGTERM, as slurmd sends it."""
        with self._lock:
            cut = [p for p in self._runs.values() if p.cut]
        for process in cut:
            process.terminate.set()

    def _of(self, job_id: str) -> list[_Process]:
        with self._lock:
            return [p for p in self._runs.values() if p.spec.job_id == job_id]

    def kill_all(self) -> None:
        """SIGKILL every run, as removing every container would."""
        with self._lock:
            processes = list(self._runs.values())
        for process in processes:
            process.signal_kill()

    def _gate(self, name: str) -> threading.Event:
        with self._lock:
            return self._gates.setdefault(name, threading.Event())

    def _create(self, daemon_id: str, spec: LaunchSpec) -> _Process:
        run_id = hashlib.sha256(f"{daemon_id}/{spec.job_id}/{next(self._ids)}".encode()).hexdigest()
        process = _Process(run_id, daemon_id, spec)
        with self._lock:
            self.launched.append(spec)
            self._runs[run_id] = process
        return process

    def _owned_by(self, daemon_id: str) -> list[_Process]:
        with self._lock:
            return [p for p in self._runs.values() if p.daemon_id == daemon_id]

    def _remove(self, run_id: str) -> None:
        with self._lock:
            self._runs.pop(run_id, None)


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
        return FakeRun(self, self.engine._create(self.daemon_id, spec))

    def adopt(self) -> list[AdoptedRun]:
        self.engine.answer()
        return [self._adopted(p) for p in self.engine._owned_by(self.daemon_id)]

    def find(self, job_id: str) -> AdoptedRun | None:
        self.engine.answer()
        return next((self._adopted(p) for p in self.engine._owned_by(self.daemon_id) if p.spec.job_id == job_id), None)

    def ping(self) -> None:
        self.engine.answer()

    def _adopted(self, process: _Process) -> AdoptedRun:
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
        for process in self.engine._owned_by(self.daemon_id):
            with process.changed:
                process.changed.notify_all()


class FakeRun:
    def __init__(self, backend: FakeBackend, process: _Process) -> None:
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
        threading.Thread(target=_execute, args=(self._engine, process), name=f"fake-{process.spec.job_id}", daemon=True).start()

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

    def release(self) -> None:
        """Remove the run, killing it if it still runs (`docker rm -f`)."""
        self._engine.answer()
        self._process.signal_kill()
        self._engine._remove(self._process.run_id)


class _Output:
    def __init__(self, engine: FakeEngine, process: _Process, offset: int, backend_closed: threading.Event) -> None:
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
        if not self._engine.pull_gate.wait(_SAFETY_TIMEOUT):
            raise LaunchFailure(f"the fake pull of {image} was never let through")
        yield {"status": "Pull complete", "id": "layer"}
        self._engine.images.add(image)

    def check_login(self, registry: str, username: str, password: str) -> None:
        self._engine.answer()
        if self._engine.logins.get(registry, (username, password)) != (username, password):
            raise LoginRefused(f"registry {registry} refused the login (unauthorized); check the username and password", field="password")


# -- the programs ---------------------------------------------------------------------------------


def _execute(engine: FakeEngine, process: _Process) -> None:
    while not engine.start_gate.wait(0.05):  # queued: it runs once the gate opens, unless it left the queue first
        if process.state != "pending":
            return
    with process.changed:
        if process.state != "pending" and process.state != "running":
            return
        process.state, process.ran = "running", True
        process.changed.notify_all()
    argv = process.spec.command
    program = argv[0] if argv else ""
    if program == "missing":
        process.write(b"[FATAL tini (7)] exec missing failed: No such file or directory\n")
        process.exit(NOT_FOUND, "the task's entrypoint 'missing' does not exist in the image (No such file or directory)")
        return
    if program == "not_executable":
        process.write(b"[FATAL tini (7)] exec not_executable failed: Permission denied\n")
        process.exit(CANNOT_EXECUTE, "the task's entrypoint 'not_executable' cannot be executed (Permission denied)")
        return
    subtask, args = (argv[1], argv[2:]) if len(argv) > 1 else ("", [])
    handler = _SUBTASKS.get(subtask)
    if handler is None:
        process.write(f"{program}: unknown subtask '{subtask}'\n".encode())
        process.exit(2)
        return
    process.exit(handler(_Task(engine, process, program), args))


class _Task:
    """What a fake program can do: write, read its environment, sleep until signalled."""

    def __init__(self, engine: FakeEngine, process: _Process, name: str) -> None:
        self.engine = engine
        self.process = process
        self.name = name

    def say(self, text: str) -> None:
        self.process.write(text.encode())

    def terminated_within(self, seconds: float) -> bool:
        """Sleep `seconds`; True when SIGTERM came first."""
        return self.process.terminate.wait(seconds)

    def killed_within(self, seconds: float) -> bool:
        return self.process.kill.wait(seconds)


def _argv(task: _Task, args: list[str]) -> int:
    task.process.write(b"".join(arg.encode("utf-8", "surrogateescape") + b"\0" for arg in args))
    return 0


def _exit(task: _Task, args: list[str]) -> int:
    task.say(f"exiting with {args[0]}\n")
    return int(args[0])


def _stderr(task: _Task, args: list[str]) -> int:
    task.say("to stdout\n")
    task.say("to stderr\n")
    return 0


def _id(task: _Task, args: list[str]) -> int:
    user = str(task.process.spec.options.get("user", "0:0"))
    uid, _, gid = user.partition(":")
    task.say(f"uid={uid} gid={gid or uid}\n")
    return 0


def _env(task: _Task, args: list[str]) -> int:
    envs = task.process.spec.envs
    for name in args:
        task.say(f"{name}={envs[name]}\n" if name in envs else f"{name}=\n")
    return 0


def _lines(task: _Task, args: list[str]) -> int:
    task.say("".join(f"{n} the quick brown fox jumps over the lazy dog\n" for n in range(1, int(args[0]) + 1)))
    return 0


def _sleep(task: _Task, args: list[str]) -> int:
    task.say(f"sleeping {args[0]}\n")
    if task.terminated_within(float(args[0])):
        task.say("got SIGTERM\n")
        return TERMINATED
    return 0


def _stubborn(task: _Task, args: list[str]) -> int:
    task.say("ignoring SIGTERM\n")
    task.killed_within(float(args[0]))
    return KILLED if task.process.kill.is_set() else 0


def _ticks(task: _Task, args: list[str]) -> int:
    for tick in range(1, int(args[0]) + 1):
        task.say(f"tick {tick}\n")
        if task.terminated_within(float(args[1])):
            task.say("got SIGTERM\n")
            return TERMINATED
    return 0


def _hold(task: _Task, args: list[str]) -> int:
    task.say(f"holding {args[0]}\n")
    gate = task.engine._gate(args[0])
    for _ in range(int(_SAFETY_TIMEOUT * 20)):
        if gate.wait(0.05):
            task.say(f"released {args[0]}\n")
            return 0
        if task.process.terminate.is_set():
            task.say("got SIGTERM\n")
            return TERMINATED
    return 1


def _train(task: _Task, args: list[str]) -> int:
    task.say(f"{task.name} train\n")
    for epoch in (1, 2, 3):
        task.say(f"Epoch {epoch}/3\n")
    task.say("training finished\n")
    return 0


def _usage(task: _Task, args: list[str]) -> int:
    task.say(f"usage: {task.name} {{train,argv,exit,stderr,id,env,sleep,stubborn,lines,hold}} [args...]\n")
    return 0


_SUBTASKS: dict[str, Callable[[_Task, list[str]], int]] = {
    "argv": _argv,
    "exit": _exit,
    "stderr": _stderr,
    "id": _id,
    "env": _env,
    "lines": _lines,
    "sleep": _sleep,
    "stubborn": _stubborn,
    "hold": _hold,
    "ticks": _ticks,
    "train": _train,
    "": _usage,
    "-h": _usage,
    "--help": _usage,
}

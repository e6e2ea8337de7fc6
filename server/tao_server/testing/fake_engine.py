"""The fake engine under FakeBackend (fake_backend.py): runs that outlive a daemon, as a Docker engine's outlive it, and their programs.

A `FakeEngine` outlives the backends that use it: a new `FakeBackend` on the same engine is a
restarted daemon, and adopts what the old one left.

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
from datetime import datetime

from tao_server.backends import Interruption, LaunchSpec
from tao_server.errors import CANNOT_EXECUTE, NOT_FOUND, BackendUnavailable

KILLED = 137  # 128 + SIGKILL, as the engine reports a killed task
TERMINATED = 143  # 128 + SIGTERM, as the sample task exits when it answers SIGTERM
SAFETY_TIMEOUT = 600.0  # no fake program runs longer than this, whatever a test forgets


@dataclass
class FakeProcess:
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
        self.expected_start: datetime | None = None  # what its queue says of when a pending run starts
        self._runs: dict[str, FakeProcess] = {}
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
            self.forget_run(process.run_id)

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

    def _of(self, job_id: str) -> list[FakeProcess]:
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

    def create(self, daemon_id: str, spec: LaunchSpec) -> FakeProcess:
        run_id = hashlib.sha256(f"{daemon_id}/{spec.job_id}/{next(self._ids)}".encode()).hexdigest()
        process = FakeProcess(run_id, daemon_id, spec)
        with self._lock:
            self.launched.append(spec)
            self._runs[run_id] = process
        return process

    def owned_by(self, daemon_id: str) -> list[FakeProcess]:
        with self._lock:
            return [p for p in self._runs.values() if p.daemon_id == daemon_id]

    def forget_run(self, run_id: str) -> None:
        with self._lock:
            self._runs.pop(run_id, None)


# -- the programs ---------------------------------------------------------------------------------


def execute(engine: FakeEngine, process: FakeProcess) -> None:
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

    def __init__(self, engine: FakeEngine, process: FakeProcess, name: str) -> None:
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
    for _ in range(int(SAFETY_TIMEOUT * 20)):
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

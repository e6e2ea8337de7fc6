"""What the job runner asks of a backend: run a job, watch it, stop it, find it again after a restart.

The runner knows jobs, not containers. A backend takes a `LaunchSpec` (image, argv, mounts,
environment, options, devices, owner) and gives back a `Run`, a handle on that job's execution:

    run = backend.prepare(spec)      # everything short of starting: may raise ImageMissing
    run.start()                      # once; from here the job is the backend's, its output captured from byte 0
    run.wait_running()               # True once it runs; a backend that queues jobs (Slurm) holds here meanwhile
    for chunk in run.output(offset): # the output from `offset`, as it comes, until the run ends
        ...
    end = run.wait()                 # RunExit: the exit code, why the entrypoint failed, who ended it if not the task
    run.cancel(grace)                # SIGTERM, then SIGKILL after `grace` seconds; returns once it ended
    run.release()                    # kill it if it still runs, then free what it holds; idempotent

    backend.adopt()                  # after a daemon restart: each run this daemon left, in any state
    backend.find(job_id)             # the one run of a job, after the backend was out of reach
    backend.ping()                   # BackendUnavailable unless the backend answers

The order of calls: `output` and `wait` only after `start` (any number of times each, also
after the run ended: output can be read again from any offset until the run is released);
`cancel` at any time (on a run not started it does nothing); `release` at any time, and after it
nothing but `release`. `wait` names an entrypoint that could not run whether or not anyone read
the output first.

A run that did not end by itself says so: `RunExit.interrupted` names the status its job ends
with (cancelled, failed or error) and why, in the backend's words: a Slurm job cancelled with
`scancel`, preempted or timed out, a node that failed, a container removed behind the daemon's
back. Such an end is never a success, whatever exit code the task left. When the task may outlive
that end (its node failed, and a node that comes back may still run it), `RunExit.cut` says so:
`output(offset)` read after `wait` then goes on until the task is gone, and `release` keeps what
the run holds until then.

Errors are the backend's own types from tao_server.errors: BackendUnavailable when the engine
cannot be reached at all, BackendError when it answers with a failure, LaunchFailure (exit code
125/126/127) when the job cannot start, ImageMissing when the image must be pulled first.

An outage is not an end. While the backend is out of reach, calls on it and on its runs raise
BackendUnavailable, also from inside an output stream that was being read: a stream never just
stops early. The runs themselves go on (they belong to the engine). Once `ping` answers again,
`find(job_id)` gives a fresh handle on the job's run, whose `output(offset)` resumes at the
byte the daemon has and whose `wait` gives the true exit code. Image management (pull, login, digests) is a capability: a
backend that has images offers an `ImageStore` as `backend.images`, others leave it None.

How the two engines fit:

    step        Docker (backends/docker)                     Slurm (backends/slurm)
    prepare     create the container (ImageMissing, ports)   write the batch script into the job's dir
    start       attach to its output, then start it           sbatch --parsable as the owner; the job id is the run id
    wait_running  at once                                      while Slurm has the job PENDING
    output      the attach stream; after a restart the        the job's output file in the shared dir,
                engine's log, replayed from `offset`          read from `offset` as it grows
    wait        the engine's wait; tini names exec failures;  the exit code the script recorded, and Slurm's end
                a container removed behind the daemon's       state where the task did not end by itself (CANCELLED,
                back is `interrupted`                         NODE_FAIL, TIMEOUT, ...: slurm/ends.py); the state from
                                                              one batched squeue per tick (scontrol/sacct once a job
                                                              leaves it); two empty answers before "lost"
    cancel      docker stop with the grace period             scancel --batch TERM (the script's docker stop takes
                                                              the grace), scancel after it
    release     remove the container                          scancel if it runs; the job's dir goes (after a node
                                                              failure, once the node is back and swept)
    adopt       containers labelled with this daemon's id     the job dirs under <shared dir>/<daemon id>
    images      pull, login, inspect on the engine            None: the nodes pull images themselves
    places      nothing: the daemon's GPU line and            GPUs (gres), nodes, time limits, its queue,
                time limits (jobs/gpus/gpu_line.py,          dependencies (--dependency=afterok:ID,
                jobs/runner/deadlines.py), dependencies       --kill-on-invalid-dep=yes)
                (jobs/runner/waiting.py)

A Slurm batch job cannot be created without being queued, so its `prepare` only writes files
and `start` submits; a Docker container is created first so that its output is attached before
the task can print a byte. Either way `start` returning means the job is the backend's to run.

A backend whose runs a user can work inside (`Backend.attaches`: Docker) also offers, on each
run, what interactive sessions need (`AttachableRun`): its standard input and terminal size
(`open_terminal`), and a connection to a port inside the run's network (`connect`), made from
the daemon without publishing anything on the host. A batch backend (Slurm) offers neither, and
the job service refuses `-i`/`-t` and port-forwards there with a message that says so.

A backend that holds dependencies ("after" in `Backend.places`: Slurm) is given a job that waits
for others as soon as each of them is submitted there (LaunchSpec.after names their runs), so it
starts the job the moment they end, with no round trip through the daemon; a dependency that
already ended is settled by the daemon's record instead (a cluster forgets old jobs). A run the
backend ends because a dependency did not end as needed reads `cancelled`, and the daemon names
that dependency in the job's message (jobs/runner/handover.py).

A backend that queues jobs itself ("queue" in `Backend.places`: Slurm) may hold a started run
before it runs: its job reads `queued` meanwhile, with the backend's reason as its condition
("pending in Slurm: Resources"), and `running` once `wait_running` returns.

What the job core still assumes: mount pins are for a backend on this host
(`mount_namespace_pid`); pull progress events are Docker's JSON lines.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class Mount:
    """A host path the job sees at `destination`."""

    source: str
    destination: str
    read_only: bool = False


@dataclass(frozen=True)
class RunDependency:
    """A run another waits for, on a backend that holds dependencies: its run id, and whether it must
    succeed ("ok": Slurm's afterok) or only end ("any": afterany)."""

    run_id: str
    kind: Literal["ok", "any"]


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a backend needs to run one job; built by the runner from the job's row."""

    job_id: str
    image: str
    command: list[str]  # argv, never a shell string
    mounts: list[Mount] = field(default_factory=list)
    envs: dict[str, str] = field(default_factory=dict)
    # The validated DockerOptions (jobs/launch_options.py): user, shm_size, ulimits, ports, ...
    options: dict[str, Any] = field(default_factory=dict)
    devices: list[str] = field(default_factory=list)  # GPU indices the scheduler granted
    # For a backend that places jobs itself (Backend.places): GPUs to allocate, nodes, a time limit (s).
    gpu_count: int = 0
    nodes: int = 1
    time_limit: int | None = None
    owner_uid: int | None = None  # who submitted it; None: the daemon itself
    owner_gid: int | None = None
    interactive: bool = False  # keep its standard input open for a terminal (`docker run -i`)
    # For a backend that holds dependencies ("after" in Backend.places): the runs this one waits for.
    after: tuple[RunDependency, ...] = ()


@dataclass(frozen=True)
class Interruption:
    """Who or what ended a run that did not end by itself: the status its job ends with, and why."""

    status: Literal["cancelled", "failed", "error"]
    reason: str


@dataclass(frozen=True)
class RunExit:
    """How a run ended: its exit code (None: the task never ran), `failure` when the entrypoint could
    not run (126/127), `interrupted` when something else than the task ended it, and `cut` when the
    task may outlive this end (its node failed): output read after it goes on until the task is gone."""

    exit_code: int | None
    failure: str | None = None
    interrupted: Interruption | None = None
    cut: bool = False


class OutputStream(Protocol):
    """A run's output as it comes; close() lets go of it early."""

    def __iter__(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class Run(Protocol):
    """One job's execution on a backend."""

    @property
    def run_id(self) -> str:
        """The backend's own name for it (a container id, a Slurm job id): what `tao list` shows."""
        ...

    def start(self) -> None: ...

    def wait_running(self) -> bool:
        """Return once the run runs (True) or ended without ever running (False). A backend that queues
        its runs ("queue" in Backend.places) holds here while they wait; the others return at once."""
        ...

    def output(self, offset: int = 0) -> OutputStream: ...

    def wait(self) -> RunExit: ...

    def cancel(self, grace: float) -> None: ...

    def release(self) -> None: ...

    def condition(self) -> str | None:
        """Why the run does not advance, as its backend says ("pending in Slurm: Resources"); None when it does."""
        ...

    def expected_start(self) -> datetime | None:
        """When a run that waits in its backend's queue is expected to start, as the backend plans it
        (Slurm's backfill: `squeue --start`); None when it does not wait there or the backend does not say.
        Read from what the backend already knows: never a call to the engine per request."""
        ...


class Terminal(Protocol):
    """An interactive run's standard input, and the size of its terminal. Calls block (the engine, the input's pace)."""

    def write(self, data: bytes) -> None:
        """Give the run's input `data`; BackendError once it is gone (the run ended)."""
        ...

    def end_input(self) -> None:
        """End the input (EOF), for a run without a TTY."""
        ...

    def resize(self, rows: int, cols: int) -> None:
        """Set the run's terminal size; its programs get SIGWINCH. BackendError when the engine refuses."""
        ...

    def close(self) -> None:
        """Let go of the input; the run goes on, and a terminal may be opened again."""
        ...


class AttachableRun(Run, Protocol):
    """A run on a backend that `attaches`: a terminal, and its ports reached from the daemon."""

    def open_terminal(self) -> Terminal: ...

    def connect(self, port: int, timeout: float) -> socket.socket:
        """A TCP connection to `port` on the run's own loopback; LaunchFailure when nothing listens there,
        BackendError when the backend cannot reach the run's network from this host."""
        ...


# A run as adoption finds it: prepared but never started, active (queued on the backend or
# running), or exited.
RunState = Literal["prepared", "active", "exited"]


@dataclass(frozen=True)
class AdoptedRun:
    """A run found after a restart; `exit_code` is set for an exited one only."""

    job_id: str
    run: Run
    state: RunState
    exit_code: int | None


@dataclass(frozen=True)
class ImageSummary:
    id: str | None
    size: int | None
    digests: list[str]


class ImageStore(Protocol):
    """Images on a backend that keeps them (a Docker engine)."""

    def registry_of(self, image: str) -> str: ...

    def summary(self, image: str) -> ImageSummary | None:
        """The local image, or None when the backend does not have it."""
        ...

    def pull(self, image: str, login: tuple[str, str] | None) -> Iterator[dict[str, Any]]:
        """Progress events while `image` is pulled with (username, password); LaunchFailure says why it failed."""
        ...

    def check_login(self, registry: str, username: str, password: str) -> None:
        """Ask the registry whether the login is good; LoginRefused when it is not."""
        ...


class Backend(Protocol):
    """Where jobs run."""

    name: str
    # What the backend decides itself instead of the daemon: "gpus" (it allocates devices: the
    # daemon's GPU line is not used and LaunchSpec.gpu_count says how many), "nodes" (jobs may span
    # several), "time" (it enforces LaunchSpec.time_limit; without it, the daemon stops a job at its
    # limit), "queue" (it queues jobs: a started run may wait there before it runs, Run.wait_running),
    # "after" (it holds a run until those in LaunchSpec.after end, starts it without the daemon once
    # they did as needed, and ends it unstarted, RunExit.interrupted "cancelled", when one did not).
    # A single engine (Docker): none of them.
    places: frozenset[str]
    # Whether its runs are AttachableRun: a terminal attaches to them, their ports are reached.
    attaches: bool

    @property
    def images(self) -> ImageStore | None:
        """The backend's images, when it keeps them; None when its jobs fetch their own."""
        ...

    def prepare(self, spec: LaunchSpec) -> Run: ...

    def adopt(self) -> list[AdoptedRun]: ...

    def find(self, job_id: str) -> AdoptedRun | None:
        """The run this daemon made for `job_id`, in whatever state; None when the backend has none."""
        ...

    def ping(self) -> None:
        """Return when the backend answers; BackendUnavailable when it does not."""
        ...

    def describe(self) -> dict[str, Any]:
        """What `tao info` shows of the backend (engine version, cluster); raises BackendError."""
        ...

    def protected_paths(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(trees, files) on the daemon's host that jobs must never mount: the engine's data and socket."""
        ...

    def mount_namespace_pid(self) -> int | None:
        """A process in the mount namespace the engine resolves bind mounts in; None when not on this host."""
        ...

    def close(self) -> None: ...

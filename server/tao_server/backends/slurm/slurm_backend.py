"""The Slurm backend: each job is a batch job whose script runs the job's container on a node.

    prepare   write the batch script (script.py) into the job's directory under the shared dir
    start     sbatch --parsable, as the job's owner; the Slurm job id is the run id
    wait_running  until Slurm's state leaves PENDING (the job reads `queued` meanwhile)
    output    the job's output file in the shared dir, read from an offset as it grows
    wait      the monitor's batched state (monitor.py), the exit code the script recorded, and
              Slurm's end state where the task did not end by itself (ends.py)
    cancel    scancel --batch --signal=TERM (the script stops its container), scancel after grace
    release   scancel if it still runs, then the job's directory goes; after a node failure,
              once the node is back and its sweep job has run (sweep.py)
    adopt     the job directories under <shared dir>/<daemon id>, with Slurm's word on each

The shared dir is seen by the daemon and every node at the same path. Each job's directory is
its owner's (the batch script runs as them and Slurm writes the output as them); the daemon, as
root, reads it all. The job's `.exit` file, written by the script, carries the exit code, so
the code is right on clusters without accounting, and marks the output as complete.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tao_common.time_limits import slurm_form
from tao_server.backends.base import AdoptedRun, LaunchSpec, OutputStream, RunExit
from tao_server.backends.container import LABEL_DAEMON, LABEL_JOB, ContainerRequest
from tao_server.backends.entrypoint import HEAD_SIZE, init_exec_failure
from tao_server.backends.slurm.commands import SlurmCommands
from tao_server.backends.slurm.ends import slurm_end
from tao_server.backends.slurm.monitor import JobMonitor
from tao_server.backends.slurm.script import (
    EXIT_SUFFIX,
    GRACE_SUFFIX,
    LABEL_SLURM_JOB,
    OUTPUT_SUFFIX,
    SIGNALLED_SUFFIX,
    BatchJob,
    SlurmOptions,
    render,
)
from tao_server.backends.slurm.state import Answer, JobState, StatePoller
from tao_server.backends.slurm.sweep import SWEEP_ID_FILE, SWEEP_SCRIPT, render_sweep
from tao_server.errors import BackendError, BackendUnavailable, LaunchFailure

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024
FOLLOW_INTERVAL = 0.1  # seconds between looks at a quiet output file
PENDING_RECHECK = 5.0  # a pending job's follower wakes on the monitor's news, or after this
KILL_MARGIN = 15.0  # seconds past the grace before scancel kills what is left
OUTAGE_RETRY = 2.0  # seconds between looks at a sweep while Slurm does not answer
SLURM_ID_FILE = "slurm-id"
OWNER_FILE = "owner.json"
SCRIPT_FILE = "job.sbatch"


@dataclass(frozen=True)
class SlurmConfig:
    """Where and how jobs go: the shared dir, the partition, the container runtime on the nodes."""

    shared_dir: Path
    partition: str | None = None
    runtime: str = "docker"
    login: str | None = None  # USER@HOST: run Slurm's commands there over SSH
    ssh_config: Path | None = None
    sbatch_args: tuple[str, ...] = ()
    stop_timeout: float = 10.0
    gpu_mode: str = "request"
    env: dict[str, str] = field(default_factory=dict)  # for Slurm's commands (SLURM_CONF)


Owner = tuple[int, int, tuple[int, ...]]


class SlurmBackend:
    name = "slurm"
    places = frozenset({"gpus", "nodes", "time", "queue"})  # Slurm allocates GPUs and nodes, keeps time limits, queues jobs
    attaches = False  # batch jobs on other hosts: no terminal, no ports reached from here
    images = None  # the nodes fetch images themselves

    def __init__(self, daemon_id: str, config: SlurmConfig, commands: SlurmCommands | None = None) -> None:
        self.daemon_id = daemon_id
        self.config = config
        self.commands = commands or SlurmCommands(config.login, config.env, ssh_config=config.ssh_config)
        self.jobs_dir = config.shared_dir / daemon_id
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.jobs_dir.chmod(0o711)  # each job's owner reaches their own directory, and lists none
        self._poller = StatePoller(self.commands.run, time.monotonic, accounting=self._has_accounting())
        self.monitor = JobMonitor(self._poller)
        self._closed = threading.Event()

    # -- runs ------------------------------------------------------------------------------------------

    def prepare(self, spec: LaunchSpec) -> SlurmRun:
        batch = self._batch(spec.job_id, _owner_of(spec))
        request = ContainerRequest.from_spec(spec, name=batch.name, labels={LABEL_DAEMON: self.daemon_id, LABEL_JOB: spec.job_id})
        options = SlurmOptions(
            partition=self.config.partition,
            gpus=spec.gpu_count,
            nodes=spec.nodes,
            time_limit=slurm_form(spec.time_limit) if spec.time_limit is not None else None,
            extra_args=self.config.sbatch_args,
        )
        try:
            script = render(request, batch, options)
        except ValueError as exc:
            raise LaunchFailure(f"the job cannot be put to Slurm: {exc}") from None
        job_dir = self._job_dir(spec.job_id)
        shutil.rmtree(job_dir, ignore_errors=True)  # a run made again after an outage starts clean
        job_dir.mkdir(mode=0o700)
        _write(job_dir / SCRIPT_FILE, script, 0o600)
        owner = _owner_of(spec)
        _write(job_dir / OWNER_FILE, json.dumps(owner), 0o600)
        if owner is not None and os.geteuid() == 0:
            for path in (job_dir, job_dir / SCRIPT_FILE):
                os.chown(path, owner[0], owner[1])
        return SlurmRun(self, batch, job_dir, owner)

    def adopt(self) -> list[AdoptedRun]:
        job_dirs = sorted(path for path in self.jobs_dir.iterdir() if path.is_dir()) if self.jobs_dir.exists() else []
        found = [self._adopted(job_dir) for job_dir in job_dirs]
        self.sweep()
        return found

    def find(self, job_id: str) -> AdoptedRun | None:
        self.ping()
        job_dir = self._job_dir(job_id)
        return self._adopted(job_dir) if job_dir.is_dir() else None

    def ping(self) -> None:
        answer = self.commands.run(["sinfo", "--noheader", "--format=%P"])
        if answer.returncode != 0:
            raise BackendUnavailable(f"Slurm does not answer: {answer.stderr.strip() or f'sinfo exited {answer.returncode}'}")
        self.monitor.recovered()

    def describe(self) -> dict[str, Any]:
        answer = self.commands.run(["scontrol", "show", "node", "-d", "--oneliner"])
        if answer.returncode != 0:
            raise BackendError(f"Slurm did not describe its nodes: {answer.stderr.strip()}")
        nodes = [_node(line) for line in answer.stdout.splitlines() if line.startswith("NodeName=")]
        return {
            "backend": self.name,
            "partition": self.config.partition or "(the cluster's default)",
            "runtime": self.config.runtime,
            "submits_as": self.commands.submits_as(),
            "nodes": nodes,
            "gpus_total": sum(node["gpus_total"] for node in nodes),
            "gpus_free": sum(node["gpus_total"] - node["gpus_used"] for node in nodes),
        }

    def protected_paths(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The shared dir: jobs' scripts, outputs and exit codes, which no job may mount."""
        return (str(self.config.shared_dir),), ()

    def mount_namespace_pid(self) -> int | None:
        return None  # the nodes resolve the mounts, not this host

    def close(self) -> None:
        self._closed.set()
        self.monitor.close()
        self.commands.close()

    def sweep(self) -> None:
        """Remove this daemon's containers on this host whose Slurm job has ended (a node that lost its job)."""
        if self.config.runtime != "docker" or shutil.which("docker") is None:
            return
        listed = subprocess.run(
            ["docker", "ps", "-a", "--no-trunc", "--filter", f"label={LABEL_DAEMON}={self.daemon_id}",
             "--format", f'{{{{.ID}}}} {{{{.Label "{LABEL_SLURM_JOB}"}}}}'],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        containers = dict(line.split(" ", 1) for line in listed.stdout.splitlines() if " " in line)
        if not containers:
            return
        active = self._poller.squeue(sorted(set(containers.values())))
        for container, slurm_id in containers.items():
            if slurm_id not in active or active[slurm_id].ended:
                log.warning("removing container %s: its Slurm job %s is gone", container[:12], slurm_id)
                subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=30, check=False)

    # -- helpers ---------------------------------------------------------------------------------------

    def _batch(self, job_id: str, owner: Owner | None) -> BatchJob:
        return BatchJob(
            daemon_id=self.daemon_id,
            job_id=job_id,
            shared_dir=str(self._job_dir(job_id)),
            runtime=self.config.runtime,
            gpu_mode=self.config.gpu_mode,
            stop_timeout=self.config.stop_timeout,
            runs_as=(owner[0], owner[1]) if owner is not None else None,
        )

    def _job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def remove_when_swept(self, job_dir: Path, sweep_id: str) -> None:
        """Remove a cut job's directory once its sweep job has run (its node is back), in a thread of its own."""

        def remove() -> None:
            self.monitor.watch(sweep_id)
            while not self._closed.is_set():
                try:
                    self.monitor.wait(lambda: self._closed.is_set() or self.swept(sweep_id))
                    break
                except BackendUnavailable:
                    self._closed.wait(OUTAGE_RETRY)
            self.monitor.unwatch(sweep_id)
            if not self._closed.is_set():  # a daemon that stops leaves it to the next one's adoption
                shutil.rmtree(job_dir, ignore_errors=True)

        threading.Thread(target=remove, name=f"slurm-sweep-{sweep_id}", daemon=True).start()

    def swept(self, sweep_id: str) -> bool:
        """Whether the sweep job ended (or Slurm lost it): the failed node is back and nothing of the job runs there."""
        state = self.monitor.state(sweep_id)
        return (state is not None and state.ended) or self.monitor.lost(sweep_id)

    def _adopted(self, job_dir: Path) -> AdoptedRun:
        owner = _read_owner(job_dir)
        run = SlurmRun(self, self._batch(job_dir.name, owner), job_dir, owner, slurm_id=self._submitted_id(job_dir))
        if run.slurm_id is None:
            return AdoptedRun(job_dir.name, run, "prepared", None)
        run.watch()
        exit_code = run.recorded_exit()
        if exit_code is not None and not run.signalled():  # the task ended by itself
            return AdoptedRun(job_dir.name, run, "exited", exit_code)
        state = self._poller.scontrol(run.slurm_id) or self._poller.squeue([run.slurm_id]).get(run.slurm_id)
        if state is None or state.ended:
            return AdoptedRun(job_dir.name, run, "exited", run.wait().exit_code)
        return AdoptedRun(job_dir.name, run, "active", None)

    def _submitted_id(self, job_dir: Path) -> str | None:
        """The Slurm job id of the job's submission, also one whose id the daemon died before recording."""
        recorded = job_dir / SLURM_ID_FILE
        if recorded.exists():
            return recorded.read_text().strip() or None
        name = self._batch(job_dir.name, None).name
        answer = self.commands.run(["squeue", "--noheader", "--states=all", f"--name={name}", "--format=%i"])
        if answer.returncode != 0:
            raise BackendUnavailable(f"Slurm did not answer squeue: {answer.stderr.strip()}")
        found = answer.stdout.split()
        if found:
            _write(recorded, found[0], 0o644)
        return found[0] if found else None

    def _has_accounting(self) -> bool:
        answer = self.commands.run(["scontrol", "show", "config"])
        return "accounting_storage/none" not in answer.stdout and answer.returncode == 0


class SlurmRun:
    """One job's batch job. Before sbatch its run id is the batch job's name; after, Slurm's job id."""

    def __init__(self, backend: SlurmBackend, batch: BatchJob, job_dir: Path, owner: Owner | None, slurm_id: str | None = None) -> None:
        self._backend = backend
        self._monitor = backend.monitor
        self.batch = batch
        self.job_dir = job_dir
        self.owner = owner
        self.slurm_id = slurm_id
        self._watching = False
        self._cut = False  # its node failed: the output goes on until the task is gone (sweep.py)
        self._cancelled = False  # this daemon cancelled it: Slurm's CANCELLED is its own doing, not someone else's

    @property
    def run_id(self) -> str:
        return self.slurm_id or self.batch.name

    @property
    def output_path(self) -> Path:
        return Path(self.batch.path(OUTPUT_SUFFIX))

    def start(self) -> None:
        answer = self._backend.commands.run(["sbatch", "--parsable", str(self.job_dir / SCRIPT_FILE)], as_user=self.owner)
        if answer.returncode != 0:
            said = answer.stderr.strip() or f"sbatch exited {answer.returncode}"
            if "Unable to contact slurm controller" in said or "Socket timed out" in said:
                raise BackendUnavailable(f"Slurm did not take the job: {said}")
            raise LaunchFailure(f"Slurm refused the job: {said}")
        self.slurm_id = answer.stdout.strip().split(";")[0]
        _write(self.job_dir / SLURM_ID_FILE, self.slurm_id, 0o644)
        self.watch()

    def watch(self) -> None:
        if not self._watching and self.slurm_id is not None:
            self._monitor.watch(self.slurm_id)
            if sweep_id := self._sweep_id():
                self._monitor.watch(sweep_id)
            self._watching = True

    def wait_running(self) -> bool:
        """Return once Slurm runs the job (True), or it ended while pending (False: cancelled, timed out in the queue)."""
        slurm_id = self._submitted()
        self._monitor.wait(lambda: self.ended() or self._left_queue())
        state = self._monitor.state(slurm_id)
        return self._exit_path.exists() or state is None or state.nodes is not None

    def _left_queue(self) -> bool:
        state = self.state()
        return state is not None and not state.pending

    def output(self, offset: int = 0) -> OutputStream:
        return _FileOutput(self._follow(offset))

    def _follow(self, offset: int) -> Iterator[bytes]:
        position = offset
        while True:
            chunk = self._read(position)
            if chunk:
                position += len(chunk)
                yield chunk
                continue
            if self._output_complete():
                while chunk := self._read(position):  # what was written just before the end
                    position += len(chunk)
                    yield chunk
                return
            if self._pending():  # nothing can be printed before Slurm starts it: wait for the monitor, not the file
                self._monitor.wait(lambda: not self._pending(), timeout=PENDING_RECHECK)
                continue
            self._monitor.wait(lambda at=position: self._output_complete() or self._size() > at, timeout=FOLLOW_INTERVAL)  # type: ignore[misc]

    def _output_complete(self) -> bool:
        """Whether no more output can come: the job ended; after a node failure, once its script ended or its node was swept."""
        if not self._cut:
            return self.ended()
        sweep_id = self._sweep_id()
        return self._exit_path.exists() or not sweep_id or self._backend.swept(sweep_id)

    def _pending(self) -> bool:
        state = self.state()
        return state is not None and state.pending

    def _read(self, position: int) -> bytes:
        try:
            with open(self.output_path, "rb") as output:
                output.seek(position)
                return output.read(READ_SIZE)
        except FileNotFoundError:
            return b""

    def _size(self) -> int:
        try:
            return self.output_path.stat().st_size
        except FileNotFoundError:
            return 0

    @property
    def _exit_path(self) -> Path:
        return Path(self.batch.path(EXIT_SUFFIX))

    def ended(self) -> bool:
        """Whether the job is over: its script recorded an exit code, or Slurm says it ended or lost it."""
        if self.slurm_id is None:
            return False
        return self._exit_path.exists() or self._slurm_done()

    def _slurm_done(self) -> bool:
        """Whether Slurm is done with the job: it ended there, or Slurm lost it."""
        state = self.state()
        return self.slurm_id is not None and ((state is not None and state.ended) or self._monitor.lost(self.slurm_id))

    def state(self) -> JobState | None:
        return self._monitor.state(self.slurm_id) if self.slurm_id is not None else None

    def condition(self) -> str | None:
        """Why the job does not run yet, as Slurm says: "pending in Slurm: Resources"."""
        state = self.state()
        if state is None or not state.pending:
            return None
        if state.state == "CONFIGURING":
            return "starting in Slurm: its nodes are being configured"
        return f"pending in Slurm: {state.reason}" if state.reason else "pending in Slurm"

    def recorded_exit(self) -> int | None:
        try:
            return int(self._exit_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def signalled(self) -> bool:
        """Whether a TERM or INT reached the script: Slurm, not the task, may have ended the job."""
        return Path(self.batch.path(SIGNALLED_SUFFIX)).exists()

    def wait(self) -> RunExit:
        slurm_id = self._submitted()
        self._monitor.wait(self.ended)
        recorded, signalled = self.recorded_exit(), self.signalled()
        if recorded is not None and signalled:  # a signal ended it: Slurm's end state says whose
            self._monitor.hurry()
            self._monitor.wait(self._slurm_done)
        state = self.state()
        end = slurm_end(slurm_id, recorded, signalled, state if state is not None and state.ended else None)
        if self._cancelled and end.interrupted is not None and end.interrupted.status == "cancelled":
            return RunExit(end.exit_code)
        if end.cut and state is not None:
            self._cut = True
            self._sweep(slurm_id, state)
        if end.interrupted is None and end.failure is None and end.exit_code is not None:
            failure = init_exec_failure(end.exit_code, self._read(0)[:HEAD_SIZE])
            if failure is not None:
                return RunExit(failure.exit_code, failure.message)
        return end

    def _submitted(self) -> str:
        if self.slurm_id is None:
            raise LaunchFailure("the job was never submitted to Slurm")
        self.watch()
        return self.slurm_id

    def _sweep(self, slurm_id: str, state: JobState) -> None:
        """Submit the job's sweep to its failed node (once): Slurm runs it when the node is back (sweep.py)."""
        if self._sweep_id() is not None:
            return
        node = state.batch_host or state.nodes
        if node is None or any(c in node for c in "[],"):
            log.warning(
                "Slurm job %s failed on %s: no single node to sweep; remove container %s there by hand", slurm_id, node, self.batch.name
            )
            _write(self.job_dir / SWEEP_ID_FILE, "", 0o644)
            return
        options = self._backend.config
        script = render_sweep(self.batch, slurm_id, node, options.partition, options.sbatch_args)
        _write(self.job_dir / SWEEP_SCRIPT, script, 0o600)
        if self.owner is not None and os.geteuid() == 0:
            os.chown(self.job_dir / SWEEP_SCRIPT, self.owner[0], self.owner[1])
        answer = self._backend.commands.run(["sbatch", "--parsable", str(self.job_dir / SWEEP_SCRIPT)], as_user=self.owner)
        sweep_id = answer.stdout.strip().split(";")[0] if answer.returncode == 0 else ""
        if not sweep_id:
            log.warning("Slurm refused the sweep of job %s on %s (%s); remove container %s there by hand",
                        slurm_id, node, answer.stderr.strip(), self.batch.name)  # fmt: skip
        _write(self.job_dir / SWEEP_ID_FILE, sweep_id, 0o644)
        if sweep_id:
            log.info("Slurm job %s failed on %s: sweep job %s removes what is left of it once the node is back", slurm_id, node, sweep_id)
            self._monitor.watch(sweep_id)

    def _sweep_id(self) -> str | None:
        """The sweep job's id; "" when none could be submitted; None when the job needs none."""
        try:
            return (self.job_dir / SWEEP_ID_FILE).read_text().strip()
        except FileNotFoundError:
            return None

    def cancel(self, grace: float) -> None:
        if self.slurm_id is None:
            return
        self._cancelled = True
        _write(Path(self.batch.path(GRACE_SUFFIX)), str(math.ceil(max(0.0, grace))), 0o644)  # the script's docker stop reads it
        self._signal_term()
        self._monitor.hurry()
        if self._monitor.wait(self.ended, timeout=grace + KILL_MARGIN):
            return
        self._scancel()
        self._monitor.wait(self.ended, timeout=60)

    def release(self) -> None:
        if self.slurm_id is not None and not self.ended():
            self._scancel()
            self._monitor.hurry()
            self._monitor.wait(self.ended, timeout=60)
        sweep_id = self._sweep_id()
        # Its node failed and is not back: the job's files stay until the sweep has run there.
        sweeping = bool(sweep_id) and not self._backend.swept(sweep_id or "")
        if self._watching and self.slurm_id is not None:
            self._monitor.unwatch(self.slurm_id)
            if sweep_id:
                self._monitor.unwatch(sweep_id)
            self._watching = False
        if sweeping and sweep_id:
            self._backend.remove_when_swept(self.job_dir, sweep_id)
            return
        shutil.rmtree(self.job_dir, ignore_errors=True)

    def _signal_term(self) -> None:
        """TERM to the batch script, which stops its container with the grace. A job that does not run yet
        has no script to signal: it only leaves the queue (scancel --batch would retry, "Job can not be
        altered now", for as long as it pends)."""
        assert self.slurm_id is not None
        state = self.state()
        if state is None or state.pending:  # not seen running yet: a plain scancel, which TERMs a script that just started too
            self._scancel()
            return
        options = ("--batch", "--signal=TERM")
        answer = self._backend.commands.run(["scancel", *options, self.slurm_id])
        if answer.returncode != 0 and "can not be altered now" in answer.stderr:
            self._scancel()
            return
        self._check(answer, options)

    def _scancel(self, *options: str) -> None:
        assert self.slurm_id is not None
        self._check(self._backend.commands.run(["scancel", *options, self.slurm_id]), options)

    def _check(self, answer: Answer, options: tuple[str, ...]) -> None:
        if answer.returncode != 0 and "already completing or completed" not in answer.stderr and "Invalid job id" not in answer.stderr:
            raise BackendError(f"scancel {shlex.join(options)} {self.slurm_id}: {answer.stderr.strip()}")


class _FileOutput:
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


def _owner_of(spec: LaunchSpec) -> Owner | None:
    if spec.owner_uid is None or spec.owner_gid is None:
        return None
    groups = spec.options.get("group_add") or []
    return spec.owner_uid, spec.owner_gid, tuple(int(g) for g in groups if str(g).isdigit())


def _read_owner(job_dir: Path) -> Owner | None:
    try:
        raw = json.loads((job_dir / OWNER_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return (int(raw[0]), int(raw[1]), tuple(int(g) for g in raw[2])) if raw else None


def _write(path: Path, text: str, mode: int) -> None:
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as file:
        file.write(text)


def _node(line: str) -> dict[str, Any]:
    """One node of `scontrol show node -d --oneliner`: its name, state and GPUs."""
    fields = dict(part.split("=", 1) for part in line.split(" ") if "=" in part)
    return {
        "name": fields.get("NodeName"),
        "state": fields.get("State"),
        "gpus_total": _gpu_count(fields.get("Gres", "")),
        "gpus_used": _gpu_count(fields.get("GresUsed", "")),
    }


def _gpu_count(gres: str) -> int:
    """GPUs in a gres list such as "gpu:4" or "gpu:tesla:2(IDX:0-1),shard:0"."""
    total = 0
    for item in gres.split(","):
        parts = item.split("(")[0].split(":")
        if parts[0] == "gpu" and parts[-1].isdigit():
            total += int(parts[-1])
    return total

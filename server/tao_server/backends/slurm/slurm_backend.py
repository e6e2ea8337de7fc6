"""The Slurm backend: each job is a batch job whose script runs the job's container on a node.

SlurmBackend (here) makes and adopts the runs; SlurmRun (slurm_run.py) is one job's batch job:

    prepare   write the batch script (script.py) into the job's directory under the shared dir, with
              --dependency=afterok:ID (the Slurm jobs of its dependencies) and --kill-on-invalid-dep=yes
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
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tao_common.time_limits import slurm_form
from tao_server.backends.base import AdoptedRun, LaunchSpec
from tao_server.backends.container import LABEL_DAEMON, LABEL_JOB, ContainerRequest
from tao_server.backends.slurm.command_runner import SlurmCommands
from tao_server.backends.slurm.monitor import JobMonitor
from tao_server.backends.slurm.script import (
    LABEL_SLURM_JOB,
    BatchJob,
    SlurmOptions,
    render,
)
from tao_server.backends.slurm.slurm_run import SCRIPT_FILE, SLURM_ID_FILE, Owner, SlurmRun, write_private
from tao_server.backends.slurm.state import StatePoller
from tao_server.errors import BackendError, BackendUnavailable, LaunchFailure

log = logging.getLogger(__name__)

OUTAGE_RETRY = 2.0  # seconds between looks at a sweep while Slurm does not answer
OWNER_FILE = "owner.json"


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


class SlurmBackend:
    name = "slurm"
    # Slurm allocates GPUs and nodes, keeps time limits, queues jobs, holds them until their dependencies end.
    places = frozenset({"gpus", "nodes", "time", "queue", "after"})
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
            after_ok=tuple(dep.run_id for dep in spec.after if dep.kind == "ok"),
            after_any=tuple(dep.run_id for dep in spec.after if dep.kind == "any"),
        )
        try:
            script = render(request, batch, options)
        except ValueError as exc:
            raise LaunchFailure(f"the job cannot be put to Slurm: {exc}") from None
        job_dir = self._job_dir(spec.job_id)
        shutil.rmtree(job_dir, ignore_errors=True)  # a run made again after an outage starts clean
        job_dir.mkdir(mode=0o700)
        write_private(job_dir / SCRIPT_FILE, script, 0o600)
        owner = _owner_of(spec)
        write_private(job_dir / OWNER_FILE, json.dumps(owner), 0o600)
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
            write_private(recorded, found[0], 0o644)
        return found[0] if found else None

    def _has_accounting(self) -> bool:
        answer = self.commands.run(["scontrol", "show", "config"])
        return "accounting_storage/none" not in answer.stdout and answer.returncode == 0


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

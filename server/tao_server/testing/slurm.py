"""A real single-node Slurm cluster (Debian's slurm-wlm 22.05 and munge 0.5.15) under one directory, for tests.

The Slurm backend is tested against the real thing: `SlurmCluster(root).start()` writes a munge
key and a `slurm.conf` into `root`, runs its own `munged`, `slurmctld -D` and `slurmd -D` as
children, and returns once the node is idle (about a second). Nothing of the system's is used:
the munge socket, ports, state, spool, pid and log files are the cluster's own, so a system
munged or slurmctld, or another cluster in another directory, never gets in the way. Every
Slurm command finds the cluster through `env()` (SLURM_CONF).

What it takes, and why:
- Root: slurmd runs jobs as their submitter, and `SlurmUser=root` keeps file ownership simple.
  Commands run as other users reach the cluster only when every directory above `root` is
  searchable by all (slurm.conf and the munge socket live there); pytest's temp dirs are not.
- GPUs are gres on placeholder device files: `root/dev/nvidia0..N-1`, character devices with
  NVIDIA's major number (195) made with mknod. Slurm 22.05 rejects plain files ("is not a valid
  character or block device") and then hands out GPUs without indexes: no SLURM_JOB_GPUS, no
  CUDA_VISIBLE_DEVICES, no `IDX:` in `scontrol show job -d`. With device nodes a job asking for
  `--gres=gpu:2` gets `GRES=gpu:2(IDX:0-1)` and `CUDA_VISIBLE_DEVICES=0,1`. Nothing opens them.
- The node describes the machine as `slurmd -C` reports it, so slurmd registers without a
  mismatch; `cpus=` overrides the CPU count, and then `SlurmdParameters=config_overrides`
  makes slurmd believe the configuration rather than the hardware.
- `MinJobAge` (default 30 s): how long slurmctld keeps a finished job, the only record of its
  end state and exit code here (no accounting daemon). Long enough for a poller to see every
  end; short enough that a test of a job Slurm has forgotten waits seconds, not Slurm's 300.
- The schedulers pass every second (`sched_interval=1`, `bf_interval=1`; 60 s and 30 s by
  default). With Slurm's defaults a job started about 3 s after its submission, or after the
  end of the job it waited for (`batch_sched_delay`); now about 1 s, slurmctld's own tick.

`stop()` cancels every job, stops the daemons, then kills what is left of the cluster. slurmstepd
detaches from slurmd (its parent is init), so a job would outlive the daemons unless looked for:
the daemons alone carry TAO_TEST_SLURM_CLUSTER=<root> in their environment, slurmstepd inherits
it from slurmd, and the jobs' processes are found below them. `start()` does the same first, for
a run in the same root that crashed, then clears the state and picks free ports: every start is a
fresh cluster. A cluster left behind in another root keeps its own ports and files, out of the way.

SchedMD bug 15857 (22.05.8 rejecting some GPU submissions with "Requested node configuration
is not available") did not show here: --gres=gpu:N, --gpus=N, --gpus-per-node, --gpus-per-task,
--cpus-per-gpu, --mem-per-gpu, --ntasks-per-gpu, --exclusive and typed GPUs (gpu:t4:N) were all
accepted and ran, under CR_CPU, CR_Core and CR_Core_Memory alike. tests/slurm keeps five forms.

`node_failure()` fails the node as a crashed slurmd and an admin would (slurmd killed, the node set
DOWN) while the block runs, and brings it back after: a job running there ends NODE_FAIL while
its script, and a docker runtime's container, run on until slurmd is back.

Two slurmds on one host (two nodes) also work with Debian's build: `slurmd -N n1` and `-N n2`,
each node with its own `Port=` and `%n` in SlurmdSpoolDir, SlurmdPidFile and SlurmdLogFile; a
`-N 2` job's `srun` ran on both. Not used here: one node is what the backend needs first.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

NVIDIA_MAJOR = 195  # the major number of /dev/nvidia[0-9]* on a real GPU machine
PARTITION = "tao"
CLUSTER_NAME = "tao-test"
# Set in the daemons' environment only: slurmstepd inherits it from slurmd, so the daemons of a
# cluster and every job they run can be found, even after a crash, and nothing else is taken for them.
DAEMON_MARKER = "TAO_TEST_SLURM_CLUSTER"
# Job states after which a job never runs again.
FINAL_STATES = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}
)


class SlurmError(RuntimeError):
    """The cluster did not start, or a Slurm command failed; the message carries what the daemons or the command said."""


class SlurmCluster:
    """munged, slurmctld and one slurmd with `gpus` gres GPUs, all under `root`, for as long as the cluster is started."""

    def __init__(self, root: Path, gpus: int = 4, cpus: int | None = None, *, min_job_age: int = 30) -> None:
        self.root = root.resolve()
        self.gpus = gpus
        self.cpus = cpus
        self.min_job_age = min_job_age
        self.node = socket.gethostname().split(".")[0]  # slurmd finds its node by the short host name
        self.partition = PARTITION
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.sock"
        self.logs = self.root / "log"
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    # -- the cluster ----------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> SlurmCluster:
        """Start munged, slurmctld and slurmd afresh and return once the node is idle."""
        _require_root()
        if len(bytes(self.munge_socket)) >= 108:  # sockaddr_un's limit
            raise SlurmError(f"{self.root} is too deep for munged's socket ({self.munge_socket}); use a shorter root")
        self._sweep()  # a run in this root that crashed may have left daemons or jobs behind
        self._clear()
        self._write_munge_key()
        self._write_gpu_devices()
        self._write_config()
        deadline = time.monotonic() + timeout
        try:
            self._launch("munged", self._munged_command(), "munged.log")  # in the foreground munged logs to stderr only
            self._wait(lambda: self.munge_socket.exists(), deadline, "munged to open its socket")
            # In the foreground they log to stderr as well as to their log files: stderr gets what precedes the log file.
            self._launch("slurmctld", ["slurmctld", "-D"], "slurmctld.out")
            self._launch("slurmd", ["slurmd", "-D"], "slurmd.out")
            self._wait(self._node_idle, deadline, f"node {self.node} to be idle")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 30) -> None:
        """Cancel every job, stop the daemons and every process they started; the root can start again."""
        if "slurmctld" in self._processes and self._processes["slurmctld"].poll() is None:
            with contextlib.suppress(SlurmError, subprocess.TimeoutExpired):  # the sweep kills what is left
                self.cancel_all_jobs(timeout / 2)
        for name in ("slurmd", "slurmctld", "munged"):
            process = self._processes.pop(name, None)
            if process is not None:
                _terminate(process, timeout / 4)
        self._sweep()

    @contextlib.contextmanager
    def controller_outage(self, timeout: float = 60) -> Iterator[None]:
        """slurmctld stopped (its state saved) while the block runs, then started again from that state: jobs run on."""
        process = self._processes.pop("slurmctld")
        _terminate(process, timeout / 2)
        try:
            yield
        finally:
            self._launch("slurmctld", ["slurmctld", "-D"], "slurmctld.out")
            self._wait(self._controller_answers, time.monotonic() + timeout, "slurmctld to answer again")

    @contextlib.contextmanager
    def node_failure(self, reason: str = "tao test: node failure", timeout: float = 60) -> Iterator[None]:
        """The node fails while the block runs: slurmd killed and the node set DOWN, so Slurm ends its
        jobs NODE_FAIL while their processes run on (slurmstepd outlives slurmd). Then slurmd starts
        again, the node returns to service (ReturnToService=2) and slurmd stops what is left of them."""
        process = self._processes.pop("slurmd")
        process.kill()
        process.wait()
        try:
            self.command("scontrol", "update", f"nodename={self.node}", "state=DOWN", f"reason={reason}")
            yield
        finally:
            self._launch("slurmd", ["slurmd", "-D"], "slurmd.out")
            self._wait(self._node_up, time.monotonic() + timeout, f"node {self.node} to be back in service")

    def _node_up(self) -> bool:
        result = subprocess.run(
            ["sinfo", "--noheader", "--nodes", self.node, "--format", "%T"], env=self.env(), capture_output=True, text=True, timeout=30
        )
        return result.returncode == 0 and result.stdout.strip() in ("idle", "mixed", "allocated", "completing")

    def _controller_answers(self) -> bool:
        result = subprocess.run(["scontrol", "ping"], env=self.env(), capture_output=True, text=True, timeout=30)
        return result.returncode == 0 and "is UP" in result.stdout

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """The environment for Slurm commands against this cluster: this process's, with no other cluster's SLURM_* variables."""
        inherited = {key: value for key, value in os.environ.items() if not key.startswith("SLURM_")}
        return {**inherited, "SLURM_CONF": str(self.conf)}

    # -- commands -------------------------------------------------------------------------------

    def command(self, *args: str, input: str | None = None) -> str:
        """Run a Slurm command (`sbatch`, `scontrol`, ...) against the cluster; its stdout, or SlurmError with its stderr."""
        result = subprocess.run(args, env=self.env(), input=input, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise SlurmError(f"{' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
        return result.stdout

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol -d show job`'s fields (JobState, Reason, ExitCode, ...; the node's detail line adds GRES)."""
        text = self.command("scontrol", "-d", "show", "job", job_id)
        # Values never hold spaces except the last field of a line (Command=, WorkDir=, ...) may.
        return dict(re.findall(r"(\w+)=(\S*)", text))

    def wait_for_job(self, job_id: str, states: set[str] | frozenset[str], timeout: float = 60) -> dict[str, str]:
        """Poll the job until its state is one of `states`; its fields then. SlurmError once it ends otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            fields = self.job(job_id)
            if fields["JobState"] in states:
                return fields
            if fields["JobState"] in FINAL_STATES:  # it will never get there: say so now, before Slurm forgets the job
                raise SlurmError(f"job {job_id} ended {fields['JobState']} (exit {fields.get('ExitCode')}), never {sorted(states)}")
            if time.monotonic() > deadline:
                raise SlurmError(
                    f"job {job_id} is {fields['JobState']} ({fields.get('Reason')}), not {sorted(states)}, after {timeout:.0f} s"
                )
            time.sleep(0.1)

    def cancel_all_jobs(self, timeout: float = 30) -> None:
        """Cancel every job, and return once none is left pending, running or completing."""
        self.command("scancel", f"--partition={self.partition}")
        deadline = time.monotonic() + timeout
        while active := set(self.command("squeue", "--noheader", "--states=all", "--format=%T").split()) - FINAL_STATES:
            if time.monotonic() > deadline:
                raise SlurmError(f"jobs still {sorted(active)} {timeout:.0f} s after scancel")
            time.sleep(0.1)

    def processes(self) -> list[int]:
        """The cluster's processes: its daemons, their slurmstepd, and the jobs' processes below them."""
        return _descendants(_processes_with_environment(f"{DAEMON_MARKER}={self.root}".encode()))

    def log_tail(self, characters: int = 3000) -> str:
        """The end of every daemon's log and output, for a failure message."""
        parts = []
        for path in sorted([*self.logs.glob("*.log"), *self.logs.glob("*.out")]):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-characters:]}")
        return "\n".join(parts)

    # -- files ----------------------------------------------------------------------------------

    def _clear(self) -> None:
        for name in ("munge", "state", "spool", "run", "log", "dev"):
            shutil.rmtree(self.root / name, ignore_errors=True)
        for name in ("munge", "state", "spool", "run", "log", "dev"):
            (self.root / name).mkdir(parents=True)

    def _write_munge_key(self) -> None:
        # munged insists: the key readable by its owner only, the socket's directory searchable by all.
        key = self.root / "munge" / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        (self.root / "munge").chmod(0o755)

    def _write_gpu_devices(self) -> None:
        for index in range(self.gpus):
            os.mknod(self.root / "dev" / f"nvidia{index}", 0o600 | 0o020000, os.makedev(NVIDIA_MAJOR, index))

    def _write_config(self) -> None:
        self.conf.write_text(self._slurm_conf(controller_port=_free_port(), slurmd_port=_free_port()))
        gpus = f"Name=gpu File={self.root}/dev/nvidia[0-{self.gpus - 1}]\n" if self.gpus else ""
        (self.root / "gres.conf").write_text(gpus)
        (self.root / "plugstack.conf").write_text("")  # never the system's SPANK plugins

    def _slurm_conf(self, controller_port: int, slurmd_port: int) -> str:
        r = self.root
        lines = [
            f"ClusterName={CLUSTER_NAME}",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={controller_port}",
            f"SlurmdPort={slurmd_port}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"StateSaveLocation={r}/state",
            f"SlurmdSpoolDir={r}/spool",
            f"SlurmctldPidFile={r}/run/slurmctld.pid",
            f"SlurmdPidFile={r}/run/slurmd.pid",
            f"SlurmctldLogFile={self.logs}/slurmctld.log",
            f"SlurmdLogFile={self.logs}/slurmd.log",
            f"PlugStackConfig={r}/plugstack.conf",
            "MailProg=/bin/true",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "MpiDefault=none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=sched_interval=1,bf_interval=1",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            f"MinJobAge={self.min_job_age}",
            "ReturnToService=2",
            "GresTypes=gpu",
        ]
        if self.cpus is not None:
            lines.append("SlurmdParameters=config_overrides")
        gres = f" Gres=gpu:{self.gpus}" if self.gpus else ""
        lines.append(f"NodeName={self.node} NodeAddr=127.0.0.1 {self._hardware()}{gres} State=UNKNOWN")
        lines.append(f"PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP")
        return "\n".join(lines) + "\n"

    def _hardware(self) -> str:
        """CPUs, topology and RealMemory as `slurmd -C` reports them; CPUs alone when `cpus` overrides them."""
        reported = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
        fields = dict(re.findall(r"(\w+)=(\S+)", reported))
        if self.cpus is not None:
            return f"CPUs={self.cpus} RealMemory={fields['RealMemory']}"
        keys = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory")
        return " ".join(f"{key}={fields[key]}" for key in keys if key in fields)

    # -- processes ------------------------------------------------------------------------------

    def _munged_command(self) -> list[str]:
        m = self.root / "munge"
        # --force: munged refuses a socket whose ancestors are not searchable by all (pytest's temp
        # dirs are 0700); root's clients reach it anyway, and the warning stays in munged.log.
        return [
            "munged", "--foreground", "--force", f"--socket={self.munge_socket}", f"--key-file={m}/munge.key",
            f"--pid-file={m}/munged.pid", f"--seed-file={m}/munged.seed",
        ]  # fmt: skip

    def _launch(self, name: str, command: list[str], output_name: str) -> None:
        with open(self.logs / output_name, "ab") as output:
            # Own session: a Ctrl-C meant for pytest reaches stop(), not the daemons directly.
            self._processes[name] = subprocess.Popen(
                command,
                env={**self.env(), DAEMON_MARKER: str(self.root)},
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait(self, ready: Callable[[], bool], deadline: float, what: str) -> None:
        while not ready():
            for name, process in self._processes.items():
                if process.poll() is not None:
                    raise SlurmError(f"{name} exited {process.returncode} while waiting for {what}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise SlurmError(f"timed out waiting for {what}:\n{self.log_tail()}")
            time.sleep(0.05)

    def _node_idle(self) -> bool:
        result = subprocess.run(
            ["sinfo", "--noheader", "--nodes", self.node, "--format", "%T"], env=self.env(), capture_output=True, text=True, timeout=30
        )
        return result.returncode == 0 and result.stdout.strip() == "idle"

    def _sweep(self) -> None:
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _require_root() -> None:
    if os.geteuid() != 0:
        raise SlurmError("a Slurm cluster needs root: slurmd runs jobs as their submitters")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return int(probe.getsockname()[1])


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _processes_with_environment(marker: bytes) -> list[int]:
    """Processes whose environment holds `marker` (`NAME=value`) exactly."""
    found = []
    for pid in _pids():
        with contextlib.suppress(OSError):  # gone meanwhile
            if marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                found.append(pid)
    return found


def _descendants(roots: list[int]) -> list[int]:
    """`roots` and every process below them; zombies, which have ended, left out."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        with contextlib.suppress(OSError, IndexError, ValueError):
            # /proc/PID/stat: "pid (comm) state ppid ...", and comm may hold spaces and parentheses.
            state, ppid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:2]
            if state != "Z":
                children.setdefault(int(ppid), []).append(pid)
    found: dict[int, None] = {}  # ordered, and each once: a marked daemon may also be another's child
    queue = list(roots)
    while queue:
        pid = queue.pop()
        if pid not in found:
            found[pid] = None
            queue.extend(children.get(pid, []))
    return list(found)


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]

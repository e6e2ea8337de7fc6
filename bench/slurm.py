"""Figures 15-17: the Slurm backend on a real single-node cluster, each beside what a careful user of plain Slurm does.

Every figure starts a cluster of its own (tao_server.testing.slurm: munged, slurmctld and one
slurmd, the scheduler passing every second) and a daemon with `--backend slurm` on it, and stops
both afterwards. The jobs run the sample image, tagged TAO_TEST_IMAGE where that is set, so that
checkouts sharing one engine do not rebuild each other's image.

    15  submission to the first output line and to the exit code: `tao` against `sbatch` of the
        same `docker run --init --rm`, the output file and squeue polled every 0.1 s
    16  RPCs slurmctld serves (sdiag) while the daemon follows N pending jobs, against `squeue -j ID`
        for every job every 2 s; the poller runs as another user, so sdiag's count by user tells
        the two apart over the same span
    17  from the task's exit (the engine's `die` event) to `tao` exiting with its code
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness import IMAGE, ROOT, Daemon, Figure, tool

from tao_server.testing.slurm import FINAL_STATES, SlurmCluster

GROUPS = ("15", "16", "17")  # what bench/run.py asks of this module
SLURM_IMAGE = os.environ.get("TAO_TEST_IMAGE", IMAGE)
POLL = 0.1  # seconds between a careful user's looks at an output file or at squeue
NAIVE_INTERVAL = 2.0  # seconds between the naive poller's rounds of `squeue -j ID`
NOBODY = 65534  # the naive poller's uid and gid: sdiag counts its RPCs apart from the daemon's (root's)
STATS_RPC = "REQUEST_STATS_INFO"  # the bench's own sdiag, also root's: taken off the daemon's count


@dataclass
class SlurmScale:
    pairs: int  # figure 15: tao and sbatch, in alternation
    active_jobs: int  # figure 16
    follow_seconds: float  # figure 16
    ends: int  # figure 17

    @classmethod
    def full(cls) -> SlurmScale:
        return cls(pairs=20, active_jobs=100, follow_seconds=300, ends=10)

    @classmethod
    def quick(cls) -> SlurmScale:
        return cls(pairs=2, active_jobs=10, follow_seconds=20, ends=1)


def submission(scale: SlurmScale) -> list[Figure]:
    """`tao detectnet_v2 exit 0` against sbatch of the same container, polled: to the first line, to the end."""
    argv = ["detectnet_v2", "exit", "0"]
    tao_first, tao_exit, plain_first, plain_end, unexported_first = [], [], [], [], []
    with slurm_daemon() as (cluster, daemon):
        outputs = daemon.root / "plain"
        outputs.mkdir()
        for run in range(scale.pairs):
            _until_idle(cluster)
            first, end = _through_tao(daemon, argv)
            tao_first.append(first)
            tao_exit.append(end)
            _until_idle(cluster)
            first, end = _through_sbatch(cluster, argv, outputs / f"{run}.out")
            plain_first.append(first)
            plain_end.append(end)
            # What the daemon avoids: the same sbatch with --export=NONE, which loads the user's login environment first.
            _until_idle(cluster)
            first, _ = _through_sbatch(cluster, argv, outputs / f"{run}-none.out", "--export=NONE")
            unexported_first.append(first)
    extra = {"sbatch_export_none_first_line_median": round(statistics.median(unexported_first), 6)}
    figures = [
        Figure("15a", "Slurm: submission to first line, tao vs sbatch + polling", "s", tao_first, "ratio <= 1.2", None,
               baseline=plain_first, baseline_name="sbatch", extra=extra),
        Figure("15b", "Slurm: submission to exit code, tao vs sbatch + squeue polling", "s", tao_exit, "ratio <= 1.2", None,
               baseline=plain_end, baseline_name="sbatch"),
    ]  # fmt: skip
    for figure in figures:
        figure.met = figure.summary()["ratio"] <= 1.2
    return figures


def controller_load(scale: SlurmScale) -> Figure:
    """slurmctld's RPCs per minute while the daemon follows N pending jobs, against `squeue -j` per job every 2 s."""
    n = scale.active_jobs
    with slurm_daemon("--max-running-jobs", str(n + 8)) as (cluster, daemon):
        # The node held whole, so the daemon's jobs stay pending (Resources) and nothing changes while counted.
        blocker = cluster.command("sbatch", "--parsable", "--exclusive", "--output=/dev/null", "--wrap", "sleep 100000").strip()
        cluster.wait_for_job(blocker, {"RUNNING"})
        for _ in range(n):
            daemon.request("POST", "/v1/jobs", {"task": "detectnet_v2", "subtask": "exit", "args": ["0"]})
        slurm_ids = _until_pending(cluster, n)
        cluster.command("sdiag", "--reset")
        started = time.monotonic()
        poller = NaivePoller(cluster, slurm_ids)
        poller.start()
        time.sleep(scale.follow_seconds)
        rpcs = parse_sdiag(cluster.command("sdiag"))
        minutes = (time.monotonic() - started) / 60
        poller.stop()
    daemon_rpcs = rpcs.by_user.get("root", 0) - rpcs.by_type.get(STATS_RPC, 0)
    naive_rpcs = rpcs.by_user.get("nobody", 0)
    figure = Figure(
        "16",
        f"Slurm RPCs/min over {scale.follow_seconds:g} s, {n} pending jobs: daemon vs squeue -j per job/2 s",
        "RPC/min",
        [daemon_rpcs / minutes],
        "ratio <= 0.1",
        None,
        baseline=[naive_rpcs / minutes],
        baseline_name="naive",
        extra={
            "rpcs_by_type": rpcs.by_type,
            "rpcs_by_user": rpcs.by_user,
            "controller_ms_by_user": {user: round(total / 1000, 1) for user, total in rpcs.time_by_user.items()},
            "naive_rounds": poller.rounds,
            "naive_squeue_per_min": round(poller.calls / minutes, 1),
        },
    )
    figure.met = figure.summary()["ratio"] <= 0.1
    return figure


def exit_to_tao(scale: SlurmScale) -> Figure:
    """From a running task's exit (the engine's `die` event) to `tao`, attached to it, exiting with its code."""
    # Tasks of different lengths end at different points of the daemon's polling back-off (0.5 s to 5 s).
    rng = random.Random(17)
    durations = [2.0] if scale.ends == 1 else [round(rng.uniform(3, 15), 2) for _ in range(scale.ends)]
    samples, codes = [], []
    with slurm_daemon() as (cluster, daemon):
        for seconds in durations:
            _until_idle(cluster)
            since = time.time()
            process = subprocess.Popen(
                [tool("tao"), "detectnet_v2", "sleep", str(seconds)], env=daemon.env(), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            assert process.stdout is not None
            if not process.stdout.readline().startswith(b"sleeping"):
                raise RuntimeError("tao printed something other than the task's first line")
            process.wait(timeout=600)
            exited = time.time()
            codes.append(process.returncode)
            samples.append(exited - _container_died(daemon, since, exited))
    median = statistics.median(samples)
    return Figure(
        "17",
        "Slurm: task exit to tao exiting with its code",
        "s",
        samples,
        "< 2 s",
        median < 2.0 and codes == [0] * len(codes),
        extra={"task_seconds": durations, "tao_exit_codes": codes},
    )


# -- the cluster and the daemon -----------------------------------------------------------------------


@contextlib.contextmanager
def slurm_daemon(*args: str) -> Iterator[tuple[SlurmCluster, Daemon]]:
    """A fresh cluster and a daemon on it with the sample manifest; both stopped and removed afterwards."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_sample_image.py"), SLURM_IMAGE], check=True, stdout=subprocess.DEVNULL)
    # A short root: munged's socket path must fit a sockaddr_un, and the naive poller's user must reach slurm.conf.
    cluster_root = Path(tempfile.mkdtemp(prefix="tao-slurm-"))
    cluster_root.chmod(0o755)
    root = Path(tempfile.mkdtemp(prefix="tao-bench-"))
    shared = root / "shared"
    shared.mkdir()
    manifest = root / "manifest.json"
    manifest.write_text(json.dumps(_manifest(SLURM_IMAGE)))
    cluster = SlurmCluster(cluster_root, gpus=4)
    slurm_args = ("--backend", "slurm", "--slurm-shared-dir", str(shared), "--slurm-partition", cluster.partition, "--gpu-mode", "env")
    cluster.start()
    daemon = Daemon(root, manifest, "--log-level", "warning", "--stop-timeout", "10", *slurm_args, *args, env=cluster.env())
    try:
        daemon.start()
        yield cluster, daemon
    finally:
        daemon.stop()
        cluster.stop()  # cancels what is left; the batch scripts stop their containers
        daemon.discard()
        shutil.rmtree(cluster_root, ignore_errors=True)


def _manifest(image: str) -> dict[str, object]:
    """The sample manifest, its one image replaced by `image`."""
    sample = json.loads((ROOT / "examples" / "sample-toolkit" / "manifest.json").read_text())
    (entries,) = (tags for tags in sample["dockers"].values())
    (entry,) = entries.values()
    repository, tag = image.rsplit(":", 1)
    return {**sample, "dockers": {repository: {tag: entry}}}


def _until_idle(cluster: SlurmCluster, timeout: float = 120) -> None:
    """Until no job is pending, running or completing: each run starts on an empty node."""
    deadline = time.monotonic() + timeout
    while set(cluster.command("squeue", "--noheader", "--states=all", "--format=%T").split()) - FINAL_STATES:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the cluster still has jobs after {timeout:.0f} s")
        time.sleep(0.05)


def _until_pending(cluster: SlurmCluster, count: int, timeout: float = 600) -> list[str]:
    """The Slurm ids of the daemon's jobs once `count` of them are pending."""
    deadline = time.monotonic() + timeout
    while True:
        listed = cluster.command("squeue", "--noheader", "--states=PENDING", "--format=%i %j").split("\n")
        ids = [line.split()[0] for line in listed if line.strip() and line.split()[1].startswith("tao-")]
        if len(ids) >= count:
            return ids
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(ids)} of {count} jobs pending in Slurm after {timeout:.0f} s")
        time.sleep(0.2)


# -- figure 15: one job each way ----------------------------------------------------------------------


def _through_tao(daemon: Daemon, argv: list[str]) -> tuple[float, float]:
    """Seconds from starting `tao ARGV` to its first line of output, and to its exit."""
    started = time.perf_counter()
    process = subprocess.Popen([tool("tao"), *argv], env=daemon.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    assert process.stdout is not None
    line = process.stdout.readline()
    first = time.perf_counter() - started
    process.communicate(timeout=600)
    end = time.perf_counter() - started
    if process.returncode != 0 or not line.startswith(b"exiting with"):
        raise RuntimeError(f"tao {shlex.join(argv)} printed {line!r} and exited {process.returncode}")
    return first, end


def _through_sbatch(cluster: SlurmCluster, argv: list[str], output: Path, *options: str) -> tuple[float, float]:
    """Seconds from sbatch of `docker run --init --rm IMAGE ARGV` to a first line in its output file, and to
    squeue showing it ended: both looked at every POLL seconds, as a careful user's script would."""
    command = shlex.join(["docker", "run", "--init", "--rm", SLURM_IMAGE, *argv])
    started = time.perf_counter()
    job_id = cluster.command("sbatch", "--parsable", *options, f"--output={output}", "--wrap", command).strip().split(";")[0]
    while b"\n" not in (output.read_bytes() if output.exists() else b""):
        time.sleep(POLL)
    first = time.perf_counter() - started
    while cluster.command("squeue", "--noheader", f"--jobs={job_id}", "--states=all", "--format=%T").strip() not in FINAL_STATES:
        time.sleep(POLL)
    return first, time.perf_counter() - started


# -- figure 16: what slurmctld serves ---------------------------------------------------------------


class NaivePoller:
    """`squeue -j ID` for every job, a round every 2 s, as user nobody; rounds that overrun start at once.

    Eight at a time: one after another, on a small machine, a round of 100 takes longer than 2 s.
    """

    def __init__(self, cluster: SlurmCluster, job_ids: list[str], interval: float = NAIVE_INTERVAL) -> None:
        self._env = cluster.env()
        self._job_ids = job_ids
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="naive-poller", daemon=True)
        self.rounds = 0
        self.calls = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()

    def _loop(self) -> None:
        with ThreadPoolExecutor(8) as pool:
            next_round = time.monotonic()
            while not self._stopping.is_set():
                list(pool.map(self._squeue, self._job_ids))
                self.rounds += 1
                self.calls += len(self._job_ids)
                next_round += self._interval
                self._stopping.wait(max(0.0, next_round - time.monotonic()))

    def _squeue(self, job_id: str) -> None:
        as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        subprocess.run([*as_nobody, "squeue", "-j", job_id], env=self._env, stdin=subprocess.DEVNULL, capture_output=True, check=True)


_SDIAG_ROW = re.compile(r"^\s+(\S+)\s+\(\s*\d+\)\s+count:(\d+)\s+ave_time:\d+\s+total_time:(\d+)", re.MULTILINE)


@dataclass
class RpcCounts:
    """sdiag's RPC statistics: how many of each message type, and how many and how long (µs) for each user."""

    by_type: dict[str, int]
    by_user: dict[str, int]
    time_by_user: dict[str, int]


def parse_sdiag(text: str) -> RpcCounts:
    _, _, rest = text.partition("Remote Procedure Call statistics by message type")
    by_type, _, rest = rest.partition("Remote Procedure Call statistics by user")
    by_user, _, _ = rest.partition("Pending RPC statistics")
    users = _SDIAG_ROW.findall(by_user)
    return RpcCounts(
        by_type={name: int(count) for name, count, _ in _SDIAG_ROW.findall(by_type)},
        by_user={name: int(count) for name, count, _ in users},
        time_by_user={name: int(total) for name, _, total in users},
    )


# -- figure 17: the task's end ------------------------------------------------------------------------


def _container_died(daemon: Daemon, since: float, until: float) -> float:
    """When the daemon's one container since `since` died, by the engine's clock (the daemon's jobs' containers are --rm)."""
    listed = subprocess.run(
        ["docker", "events", "--since", f"{since:.3f}", "--until", f"{until:.3f}", "--filter", "type=container",
         "--filter", "event=die", "--filter", f"label=org.tao-launcher.daemon={daemon.daemon_id()}", "--format", "{{json .}}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    deaths = [int(json.loads(line)["timeNano"]) / 1e9 for line in listed.splitlines()]
    if len(deaths) != 1:
        raise RuntimeError(f"expected one container of the daemon to die, the engine reports {len(deaths)}")
    return deaths[0]

"""Following a task's status file under load (figure 25).

A job of the sample image sleeps with its results dir mounted; this process writes the task's first
status line (STARTED) and, once the daemon shows it, appends TAO-shaped status lines to
`results/status.json` in that mount at LINES_PER_SECOND for the scale's duration
(10 lines every 10 ms, each with a new step and new values, so every line is news to the daemon),
while it reads the job from the API every POLL seconds.

25a: the lag from a line's write to the API showing it (`progress.step` of `GET /v1/jobs/{id}`):
     each line counts from when its write returned to the first answer that shows its step
     (the poll's period is included: the figure is an upper bound).
25b: the daemon's CPU while it follows, in % of one core (its utime and stime over the run, from
     /proc), beside the same poller against an idle job for as long (`baseline`).
25c: the daemon's RSS: how much it grew from before the writer began to the most it held.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import Daemon, Figure, bench_daemon, percentile, rss_mb, unix_connection

GROUPS = ("25",)  # what bench/run.py asks of this module
LINES_PER_SECOND = 1000
BATCH = 10  # lines a write: 1000 a second as 100 writes of 10
POLL = 0.05


@dataclass
class TrainingScale:
    seconds: float

    @classmethod
    def full(cls) -> TrainingScale:
        return cls(seconds=60.0)

    @classmethod
    def quick(cls) -> TrainingScale:
        return cls(seconds=5.0)


def run_group(group: str, scale: TrainingScale, manifest: Path | None = None) -> list[Figure]:
    daemon = bench_daemon(manifest=manifest).start()
    try:
        return following(daemon, scale)
    finally:
        daemon.discard()


def following(daemon: Daemon, scale: TrainingScale) -> list[Figure]:
    pid = daemon.process.pid  # type: ignore[union-attr]
    workspace = daemon.root / "workspace"
    (workspace / "results").mkdir(parents=True)
    job_id = _sleeping_job(daemon, workspace)
    _started(daemon, job_id, workspace / "results" / "status.json")
    idle_cpu = _cpu_while(pid, lambda stop: _poll(daemon, job_id, stop, {}), scale.seconds)
    before = rss_mb(pid)
    written: dict[int, float] = {}
    seen: dict[int, float] = {}
    peak = [before]

    def load(stop: threading.Event) -> None:
        threads = [
            threading.Thread(target=_write, args=(workspace / "results" / "status.json", written, stop, scale.seconds)),
            threading.Thread(target=_poll, args=(daemon, job_id, stop, seen)),
            threading.Thread(target=_watch_rss, args=(pid, peak, stop)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    busy_cpu = _cpu_while(pid, load, scale.seconds, own_clock=True)
    lags = _lags(written, seen)
    series = daemon.request("GET", f"/v1/jobs/{job_id}/metrics")["series"]
    daemon.request("POST", f"/v1/jobs/{job_id}/cancel")
    lines = len(written)
    p99 = percentile(lags, 0.99) if lags else float("inf")
    return [
        Figure(
            "25a",
            f"status line written -> shown by GET /v1/jobs/ID, {LINES_PER_SECOND} lines/s for {scale.seconds:.0f} s",
            "s",
            lags or [float("inf")],
            "p99 < 1 s",
            p99 < 1.0 and len(lags) == lines,
            extra={"p99": round(p99, 4), "lines_written": lines, "lines_shown": len(lags), "poll_period_s": POLL},
        ),
        Figure(
            "25b",
            f"daemon CPU following {LINES_PER_SECOND} status lines/s (and answering {1 / POLL:.0f} GETs/s)",
            "% of a core",
            [busy_cpu],
            "< 10% of a core",
            busy_cpu < 10.0,
            baseline=[idle_cpu],
            baseline_name="the same GETs, no lines",
        ),
        Figure(
            "25c",
            f"daemon RSS growth while following {lines} status lines",
            "MB",
            [peak[0] - before],
            "+20 MB at most",
            peak[0] - before <= 20.0,
            extra={"before_mb": round(before, 1), "peak_mb": round(peak[0], 1), "points_kept": {k: len(v) for k, v in series.items()}},
        ),
    ]


def _sleeping_job(daemon: Daemon, workspace: Path) -> str:
    """A job that sleeps with `workspace` mounted at /workspace and its results dir given: the daemon follows it."""
    mounts = daemon.root / "mounts.json"
    mounts.write_text(json.dumps({"Mounts": [{"source": str(workspace), "destination": "/workspace"}]}))
    body = {
        "task": "detectnet_v2",
        "subtask": "run",
        "args": ["sh", "-c", "sleep 3600", "sh", "--results_dir", "/workspace/results"],
        "launch_config": json.loads(mounts.read_text()),
        "gpus": "none",
    }
    job_id: str = daemon.request("POST", "/v1/jobs", body)["id"]
    deadline = time.monotonic() + 120
    while daemon.job(job_id)["status"] != "running":
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench job {job_id} never ran: {daemon.job(job_id)}")
        time.sleep(0.05)
    return job_id


def _started(daemon: Daemon, job_id: str, path: Path) -> None:
    """The task's first line, as TAO's logger writes it when training starts; once the daemon shows it, it follows the file."""
    path.write_text(json.dumps({"date": "12/7/2026", "time": "10:0:0", "status": "STARTED", "message": "Starting Training Loop."}) + "\n")
    deadline = time.monotonic() + 60
    while (daemon.job(job_id).get("progress") or {}).get("status") != "STARTED":
        if time.monotonic() > deadline:
            raise RuntimeError(f"the daemon never showed job {job_id}'s first status line")
        time.sleep(0.05)


def _write(path: Path, written: dict[int, float], stop: threading.Event, seconds: float) -> None:
    """Append BATCH lines every BATCH/LINES_PER_SECOND s for `seconds`, on a fixed schedule; note when each landed."""
    total = int(seconds * LINES_PER_SECOND)
    started = time.monotonic()
    step = 0
    with open(path, "ab", buffering=0) as file:
        while step < total:
            lines = b"".join(_line(step + n, total) for n in range(BATCH))
            file.write(lines)
            now = time.time()
            for n in range(BATCH):
                written[step + n] = now
            step += BATCH
            pause = started + step / LINES_PER_SECOND - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    time.sleep(2.0)  # the last lines' way to the API
    stop.set()


def _line(step: int, total: int) -> bytes:
    data: dict[str, Any] = {
        "epoch": step // 1000,
        "max_epoch": total // 1000,
        "step": step,
        "max_step": total,
        "time_per_step": "0:00:00.001000",
        "eta": f"0:00:{(total - step) // 1000:02d}.000000",
        "date": "12/7/2026",
        "time": "10:0:0",
        "status": "RUNNING",
        "verbosity": "INFO",
        "message": "Training loop in progress",
        "graphical": {"loss": 1.0 / (1 + step), "learning_rate": 0.0005 * (1 - step / total)},
        "kpi": {"mAP": step / total},
    }
    return json.dumps(data).encode() + b"\n"


def _poll(daemon: Daemon, job_id: str, stop: threading.Event, seen: dict[int, float]) -> None:
    """GET the job every POLL s; note when each step was first shown (all steps up to the one shown)."""
    connection = unix_connection(daemon.socket, timeout=30)
    shown = -1
    try:
        while not stop.is_set():
            connection.request("GET", f"/v1/jobs/{job_id}")
            answer = json.loads(connection.getresponse().read())
            now = time.time()
            step = (answer.get("progress") or {}).get("step")
            if step is not None and step > shown:
                for each in range(shown + 1, step + 1):
                    seen[each] = now
                shown = step
            time.sleep(POLL)
    finally:
        connection.close()


def _watch_rss(pid: int, peak: list[float], stop: threading.Event) -> None:
    while not stop.wait(0.5):
        peak[0] = max(peak[0], rss_mb(pid))
    peak[0] = max(peak[0], rss_mb(pid))


def _cpu_while(pid: int, work: Any, seconds: float, own_clock: bool = False) -> float:
    """The daemon's CPU in % of one core while `work(stop)` runs (for `seconds`, unless it stops itself)."""
    stop = threading.Event()
    before, started = _cpu_seconds(pid), time.monotonic()
    if not own_clock:
        threading.Timer(seconds, stop.set).start()
    work(stop)
    return round(100 * (_cpu_seconds(pid) - before) / (time.monotonic() - started), 2)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _lags(written: dict[int, float], seen: dict[int, float]) -> list[float]:
    return [seen[step] - at for step, at in written.items() if step in seen]

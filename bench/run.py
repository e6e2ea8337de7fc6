"""Run the launcher's benchmarks against a real Docker engine and write bench/results/latest.json.

bash scripts/bench            # every figure at full size (about 25 minutes on 2 cores)
bash scripts/bench --quick    # small sizes, a smoke test that the scripts still work
bash scripts/bench --only 2,7 # some figures
bash scripts/bench --only 15,16,17  # the Slurm backend on a real single-node cluster (needs root, slurm-wlm, munge)
bash scripts/bench --only 18,19     # the dashboard in chromium (Playwright, /usr/bin/chromium)
bash scripts/bench --only 20        # a team's job trace: the GPU line's three modes and Slurm with backfill (needs root, slurm-wlm)
bash scripts/bench --only 22,23     # a task's terminal and port-forward against Docker's own paths
bash scripts/bench --only 24        # notifications: a job's end to a receiver, a notify URL's cost to a submission
bash scripts/bench --only 25        # a task's status file followed at 1,000 lines a second: lag, CPU, memory
bash scripts/bench --only 6,26      # logs streamed to 50 followers, and newcomers answered meanwhile
bash scripts/bench --only 27        # GET /metrics as Prometheus scrapes it, 1,000 jobs in the table
bash scripts/bench --only 28        # a step's hand-off to the next: Docker, and Slurm against sbatch --dependency (needs root, slurm-wlm)
bash scripts/bench --only 29        # a seeded sweep: GPU-seconds to the optimum with and without pruning; overhead per trial
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import dashboard
import faults
import figures  # bench/ is the script's directory, first on sys.path
import interactive
import job_trace
import notifications
import observability
import published
import slurm
import streams
import sweeps
import training
import workflows
from harness import ROOT, Daemon, Figure, bench_daemon, build_image, tool

# 7 also measures 8 (memory), on the same daemon
GROUPS = ("1", "2", "3", "4", "5", "6", "7", "9", "10", "11", "12", "13", "14", "15", "16", "17", "18", "19", "20", "22", "23", "24", "25", "26", "27", "28", "29")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and few runs: checks the scripts, not the targets")
    parser.add_argument(
        "--only",
        default=",".join(GROUPS),
        help="comma-separated figure numbers (8 comes with 7; 9 is the cold pull; 10-14 are faults; 15-17 are Slurm; "
        "18-19 the dashboard; 20 the job trace (21 its targets); 22-23 interactive sessions; 24 notifications; 25 training progress; "
        "26 newcomers while logs stream; 27 GET /metrics; 28 a step's hand-off to the next; 29 sweeps)",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="put the run's figures on docs/performance.md (bench/published.json keeps each figure's last measurement)",
    )
    parser.add_argument("--results", type=Path, help="with --write-docs: publish this results file instead of running anything")
    args = parser.parse_args()
    if args.write_docs and args.results is not None:
        _publish(json.loads(args.results.read_text()))
        return
    wanted = {part.strip() for part in args.only.split(",")}
    if "8" in wanted:
        wanted.add("7")
    scale = figures.Scale.quick() if args.quick else figures.Scale.full()
    fault_scale = faults.FaultScale.quick() if args.quick else faults.FaultScale.full()
    slurm_scale = slurm.SlurmScale.quick() if args.quick else slurm.SlurmScale.full()
    dashboard_scale = dashboard.DashboardScale.quick() if args.quick else dashboard.DashboardScale.full()
    trace_scale = job_trace.TraceScale.quick() if args.quick else job_trace.TraceScale.full()
    session_scale = interactive.SessionScale.quick() if args.quick else interactive.SessionScale.full()
    training_scale = training.TrainingScale.quick() if args.quick else training.TrainingScale.full()
    notify_scale = notifications.NotifyScale.quick() if args.quick else notifications.NotifyScale.full()
    metrics_scale = observability.MetricsScale.quick() if args.quick else observability.MetricsScale.full()
    stream_scale = streams.StreamScale.quick() if args.quick else streams.StreamScale.full()
    handoff_scale = workflows.HandoffScale.quick() if args.quick else workflows.HandoffScale.full()
    sweep_scale = sweeps.SweepScale.quick() if args.quick else sweeps.SweepScale.full()
    build_image()

    results: list[Figure] = []
    shared = bench_daemon().start()
    try:
        for group in GROUPS:
            if group not in wanted:
                continue
            started = time.perf_counter()
            if group in figures.GROUPS:
                produced = _run_group(group, shared, scale)
            elif group in slurm.GROUPS:
                produced = _run_slurm(group, slurm_scale)
            elif group in dashboard.GROUPS:
                produced = dashboard.run_group(group, dashboard_scale)
            elif group in interactive.GROUPS:
                produced = interactive.run_group(group, session_scale)
            elif group in training.GROUPS:
                produced = training.run_group(group, training_scale)
            elif group in job_trace.GROUPS:
                produced = job_trace.run_group(group, trace_scale)
            elif group in notifications.GROUPS:
                produced = notifications.run_group(group, notify_scale)
            elif group in streams.GROUPS:
                produced = streams.run_group(group, stream_scale)
            elif group in observability.GROUPS:
                produced = observability.run_group(group, metrics_scale)
            elif group in workflows.GROUPS:
                produced = workflows.run_group(group, handoff_scale)
            elif group in sweeps.GROUPS:
                produced = sweeps.run_group(group, sweep_scale)
            else:
                produced = _run_fault(group, fault_scale)
            results += produced
            for figure in produced:
                _print_row(figure)
            print(f"   (figure {group} took {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    finally:
        shared.discard()

    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": _machine(),
        "figures": [f.summary() for f in results],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    missed = [f.number for f in results if f.met is False]
    if missed and not args.quick:
        print(f"targets missed: {', '.join(missed)}")
    if args.write_docs and not args.quick:  # a smoke run's sizes say nothing worth publishing
        _publish(report)


def _publish(report: dict[str, object]) -> None:
    published.write(published.merge(report))
    print(f"wrote {published.PAGE.relative_to(ROOT)} ({len(report['figures'])} figures from {report['date']})")  # type: ignore[arg-type]


def _run_fault(group: str, scale: faults.FaultScale) -> list[Figure]:
    if group == "10":
        return faults.restart(scale)
    if group == "11":
        return [faults.outage(scale)]
    if group == "12":
        return [faults.burst(scale)]
    if group == "13":
        return [faults.hostile_body(scale)]
    return [faults.gpu_handoff(scale)]


def _run_slurm(group: str, scale: slurm.SlurmScale) -> list[Figure]:
    if group == "15":
        return slurm.submission(scale)
    if group == "16":
        return [slurm.controller_load(scale)]
    return [slurm.exit_to_tao(scale)]


def _run_group(group: str, shared: Daemon, scale: figures.Scale) -> list[Figure]:
    if group == "1":
        return figures.startup(shared, scale)
    if group == "2":
        return [figures.trivial_task(shared, scale)]
    if group == "3":
        return [figures.ctrl_c(shared, scale)]
    if group == "4":
        return [figures.submissions(scale)]
    if group == "5":
        return [figures.start_rate(scale)]
    if group == "6":
        return figures.log_throughput(scale)
    if group == "9":
        return [figures.cold_pull(scale)]
    return figures.list_latency_and_memory(scale)


def _print_row(figure: Figure) -> None:
    summary = figure.summary()
    value = _fmt(summary["median"], figure.unit)
    spread = f"[{_fmt(summary['min'], figure.unit)} .. {_fmt(summary['max'], figure.unit)}]"
    versus = ""
    if "ratio" in summary:
        versus = f"  {figure.baseline_name} {_fmt(summary['baseline']['median'], figure.unit)}  ratio {summary['ratio']:.3g}"
    p99 = f"  p99 {_fmt(summary['p99'], figure.unit)}" if "p99" in summary else ""
    verdict = {True: "met", False: "MISSED", None: "-"}[figure.met]
    print(f"{figure.number:>3}  {figure.name:<72} {value:>10} {spread:<24}{versus}{p99}  target {figure.target}: {verdict}")


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 10 else f"{value:.1f} s"
    return f"{value:.1f} {unit}"


def _machine() -> dict[str, object]:
    docker_version = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True).stdout.strip()
    tao_version = subprocess.run([tool("tao"), "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        "python": platform.python_version(),
        "docker": docker_version,
        "tao": tao_version,
    }


if __name__ == "__main__":
    main()

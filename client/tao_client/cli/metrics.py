"""`tao metrics JOB`: a job's training as TAO's status file tells it: a line per epoch, then the latest KPIs,
and its GPU use where the daemon samples it.

With -f the lines come as the epochs end, until the job does; --json and --csv give the series
as the REST API does (`GET /v1/jobs/{id}/metrics`).
"""

from __future__ import annotations

import json
import sys
import time
from argparse import Namespace

from tao_client.cli._common import EXIT_SIGINT, print_table, write_out, write_text
from tao_client.cli._parser import Parser

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from tao_client._training import Metrics
    from tao_client.client import Client, Job

FOLLOW_INTERVAL = 2.0  # seconds between looks while following: epochs take minutes
COLUMN = 12  # a column's width while following, when later rows cannot widen it


def metrics_parser() -> Parser:
    parser = Parser(
        prog="tao metrics",
        description="A job's training from TAO's status file in its results dir: a line per epoch with each series "
        "(loss, learning rate, validation metrics), then the latest KPIs, and the job's GPU use where the daemon samples it.",
    )
    parser.add_argument("job_id", metavar="JOB_ID")
    parser.add_argument("-f", "--follow", action="store_true", help="print each epoch's line as it ends, until the job does")
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help='{"series": {NAME: [{"epoch", "step", "value", "time"}...]}, ...}')
    shape.add_argument("--csv", action="store_true", help="a line per point: series,epoch,step,value,time")
    return parser


def show_metrics(client: Client, args: Namespace) -> int:
    job = client.job(args.job_id)
    if args.csv:
        write_out(client.metrics_csv(job.id))
        return 0
    if args.json:
        write_text(json.dumps(client.metrics(job.id).data, indent=2) + "\n")
        return 0
    try:
        metrics = _follow(client, job) if args.follow else client.metrics(job.id)
    except KeyboardInterrupt:
        return EXIT_SIGINT
    if not args.follow and any(name not in metrics.sampled for name in metrics.series):
        print_table(table(metrics))
    job = client.job(job.id)
    _summary(job, metrics)
    return 0


def table(metrics: Metrics) -> list[tuple[str, ...]]:
    """The header and a row per epoch (and step): a column per series of the status file."""
    from tao_client._training import number

    names = [name for name in metrics.series if name not in metrics.sampled]
    rows: list[tuple[str, ...]] = [("EPOCH", "STEP", *names)]
    for epoch, step, values in metrics.rows():
        cells = (number(values[name]) if name in values else "" for name in names)
        rows.append((_count(epoch), _count(step), *cells))
    return rows


def _follow(client: Client, job: Job) -> Metrics:
    """Print each row once it is complete (the next one has begun, or the job has ended), until the job ends."""
    printed, columns = 0, None
    while True:
        done = job.done
        metrics = client.metrics(job.id)
        rows = table(metrics)
        ready = rows[1:] if done else rows[1:-1]
        if ready[printed:] and rows[0] != columns:
            columns = rows[0]
            _line(columns)
        for row in ready[printed:]:
            _line(row)
        printed = max(printed, len(ready))
        if done:
            return metrics
        time.sleep(FOLLOW_INTERVAL)
        job = client.job(job.id)


def _line(cells: tuple[str, ...]) -> None:
    write_text("  ".join(cell.ljust(COLUMN) for cell in cells).rstrip() + "\n")


def _summary(job: Job, metrics: Metrics) -> None:
    """The latest KPIs and where the run stands; or why there is nothing to show."""
    from tao_client._training import number
    from tao_common.progress import progress_text

    progress = job.progress
    if progress:
        kpi = "  ".join(f"{name} {number(value)}" for name, value in (progress.get("kpi") or {}).items())
        where = progress_text(progress)
        write_text(f"KPIs ({where}): {kpi}\n" if kpi else f"progress: {where}\n")
    elif metrics.unavailable:
        print(f"tao: job {job.id}'s progress cannot be followed: {metrics.unavailable}", file=sys.stderr)
    elif len(metrics.series) == len(metrics.sampled):
        print(
            f"tao: job {job.id} has no training progress (yet): its status.json is found in its results dir "
            "(-r DIR, results_dir=DIR), or named with `tao --status-file PATH`",
            file=sys.stderr,
        )
    if gpu := metrics.gpu_text():
        write_text(f"{gpu}\n")
    if metrics.skipped:
        skipped = ", ".join(f"{reason} {count}" for reason, count in metrics.skipped.items())
        print(f"tao: left out of the status file: {skipped}", file=sys.stderr)


def _count(value: int | None) -> str:
    return "" if value is None else str(value)

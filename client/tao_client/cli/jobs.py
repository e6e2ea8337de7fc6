"""`tao list`, `tao stop` and `tao logs`: the jobs the daemon holds."""

from __future__ import annotations

import json
import sys
from argparse import Namespace

from tao_client.cli._common import EXIT_LAUNCHER, error, print_table, write_out, write_text
from tao_client.cli._parser import Parser
from tao_client.cli.follow import attach

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any

    from tao_client.client import Client


# -- list ------------------------------------------------------------------------------------------


def list_parser() -> Parser:
    parser = Parser(
        prog="tao list",
        description="Jobs queued and running, newest first. PROGRESS is the training's, from TAO's status file "
        "(epoch/max_epoch, percent, time left; n/a: it cannot be followed, `tao show` says why). On a terminal the COMMAND "
        "column is cut to its width; piped, or with --no-trunc or --json, it is whole.",
    )
    parser.add_argument("-a", "--all", action="store_true", help="include finished jobs")
    parser.add_argument("--json", action="store_true", help="one JSON array, newest first, as the REST API returns jobs")
    parser.add_argument("-n", "--limit", type=int, default=None, help="show at most this many (the newest)")
    parser.add_argument("--no-trunc", action="store_true", help="never cut the COMMAND column")
    return parser


def list_jobs(client: Client, args: Namespace) -> int:
    from tao_client.client import ACTIVE_STATUSES

    found = []
    for job in client.jobs(None if args.all else ACTIVE_STATUSES):
        found.append(job)
        if args.limit is not None and len(found) >= args.limit:
            break
    if args.json:
        write_text(json.dumps([job.data for job in found], indent=2) + "\n")
        return 0
    from tao_common.progress import progress_text

    rows = [("JOB ID", "TASK", "STATUS", "PROGRESS", "EXIT", "CREATED", "DURATION", "CONTAINER", "COMMAND")]
    rows += [
        (
            job.id,
            task_text(job.data),
            status_text(job.data),
            progress_text(job.progress) or ("n/a" if job.data.get("progress_unavailable") else ""),
            "" if job.exit_code is None else str(job.exit_code),
            job.data["created_at"][:19].replace("T", " "),
            duration(job.data),
            (job.data["container_id"] or "")[:12],
            command_text(job.data),
        )
        for job in found
    ]
    width = None if args.no_trunc or not sys.stdout.isatty() else _terminal_width()
    print_table(rows, last_width=width)
    return 0


def task_text(job: dict[str, Any]) -> str:
    """The task (with its group), and what it is part of: "detectnet_v2 (pipeline k3x9: train)", "detectnet_v2 (sweep ab12cd34 #3)"."""
    task = " ".join(part for part in (job["group"], job["task"]) if part)
    if job.get("pipeline_id"):
        return f"{task} (pipeline {job['pipeline_id']}: {job['step']})"
    return f"{task} (sweep {job['sweep_id']} #{job['trial']})" if job.get("sweep_id") else task


def command_text(job: dict[str, Any]) -> str:
    """The subtask and arguments as a shell would take them back: what tells a job from its neighbours."""
    import shlex

    return shlex.join([job["subtask"], *job["args"]] if job["subtask"] else job["args"])


def duration(job: dict[str, Any], now: datetime | None = None) -> str:
    """How long the job has run (M:SS, H:MM:SS, or D-HH:MM:SS as Slurm writes it); "" before it starts."""
    from datetime import UTC, datetime

    if not job.get("started_at"):
        return ""
    end = datetime.fromisoformat(job["finished_at"]) if job.get("finished_at") else (now or datetime.now(UTC))
    seconds = max(0, int((end - datetime.fromisoformat(job["started_at"])).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _terminal_width() -> int:
    import os

    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except OSError:
        return 80


def status_text(job: dict[str, Any]) -> str:
    """The status, and in one parenthesis: when a waiting job is expected to start, its attempt, why it does not advance.

    "queued (~14:05)", "running (attempt 2)", "queued (~14:05; GPU line #1: needs 2 GPUs, 0 free; ...)".
    """
    notes = [note for note in (_expected(job), _attempt(job), _waiting(job)) if note]
    return str(job["status"]) + (f" ({'; '.join(notes)})" if notes else "")


def _expected(job: dict[str, Any]) -> str:
    if not job.get("expected_start") or job["status"] not in ("queued", "pulling"):
        return ""
    from datetime import datetime

    when = datetime.fromisoformat(job["expected_start"]).astimezone()
    return "~" + when.strftime("%H:%M" if when.date() == datetime.now().astimezone().date() else "%b %d %H:%M")


def _attempt(job: dict[str, Any]) -> str:
    return f"attempt {job['attempt']}" if job.get("attempt", 1) > 1 else ""


def _waiting(job: dict[str, Any]) -> str:
    """Why a job does not advance: the backend's outage or a dependency, or its place in the GPU line and why."""
    if job.get("condition"):
        return str(job["condition"])
    if not job.get("gpu_queue_position"):
        return ""
    why = f": {job['gpu_wait']['message']}" if job.get("gpu_wait") else ""
    return f"GPU line #{job['gpu_queue_position']}{why}"


# -- stop ------------------------------------------------------------------------------------------


def stop_parser() -> Parser:
    parser = Parser(
        prog="tao stop",
        description="Stop jobs; waits until their containers are gone. Exits 125 if any job named is unknown (the others are still stopped).",
    )
    parser.add_argument("job_ids", nargs="*", metavar="JOB_ID")
    parser.add_argument(
        "--container_id", "--container-id", nargs="+", default=[], metavar="ID", help="stop the jobs running in these containers"
    )
    parser.add_argument("--all", action="store_true", help="stop every queued and running job")
    parser.add_argument("--no-wait", action="store_true", help="return once the stop is requested")
    return parser


def stop_jobs(client: Client, args: Namespace) -> int:
    from tao_client._errors import ApiError
    from tao_client.client import ACTIVE_STATUSES

    if not (args.job_ids or args.container_id or args.all):
        error("tao stop needs JOB_ID..., --container_id ID... or --all")
        return EXIT_LAUNCHER
    targets = list(args.job_ids)
    status = 0
    for container_id in args.container_id:
        matches = [job.id for job in client.jobs(container_id=container_id)] if container_id.strip() else []
        if len(matches) != 1:
            error(f"container id {container_id!r} matches {'no job' if not matches else 'several jobs: ' + ', '.join(matches)}")
            status = EXIT_LAUNCHER
            continue
        targets += matches
    if args.all:
        targets += [job.id for job in client.jobs(ACTIVE_STATUSES)]
    cancelled = []
    for job_id in dict.fromkeys(targets):
        try:
            cancelled.append(client.cancel(job_id))
        except ApiError as exc:  # an unknown job: the others are stopped all the same
            error(exc.message)
            status = EXIT_LAUNCHER
    for job in cancelled:
        final = job if args.no_wait else client.wait_until_done(job.id)
        print(f"{final.id}: {final.status}")
    return status


# -- logs ------------------------------------------------------------------------------------------


def logs_parser() -> Parser:
    parser = Parser(
        prog="tao logs",
        description="A job's output; for a job that has ended, exits with its exit code (and says why it ended when it printed "
        "nothing). With -f, follow it to the end.",
    )
    parser.add_argument("job_id", metavar="JOB_ID")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends (Ctrl-C detaches; the job goes on)")
    parser.add_argument(
        "--attempt", type=int, metavar="K", help="the output of attempt K (from 1) of a job run again after a failure; default: the last"
    )
    return parser


def show_logs(client: Client, args: Namespace) -> int:
    """The output so far; for a job that has ended, its exit code, and why it ended when it printed nothing."""
    if args.follow:
        return attach(client, args.job_id, cancel_on_signal=False)
    from tao_client.cli.follow import exit_code

    job = client.job(args.job_id)  # first: a job seen ended has all its output written
    attempt = args.attempt if args.attempt is not None else (job.data.get("attempt", 1) if job.data.get("attempt", 1) > 1 else None)
    output = client.logs(job.id, attempt=attempt)
    if args.attempt is not None and args.attempt != job.data.get("attempt", 1):
        write_out(output)
        return 0
    write_out(output)
    if not job.done:
        return 0
    if not output and job.status not in ("error", "cancelled") and not job.error:  # exit_code() says those
        print(f"tao: job {job.id} {job.status} with exit code {job.exit_code} and printed nothing", file=sys.stderr)
    return exit_code(job)

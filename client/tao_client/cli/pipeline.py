"""`tao pipeline run FILE.yaml [-d]`, `tao pipeline list`, `tao pipeline show ID [--json]`, `tao pipeline stop ID`.

The file goes to the daemon as written, which checks it whole before it submits anything: a
refusal names the file, line, column and key, and exits 125. Attached, each step's output is
shown under a header naming the step, one step after another as they start; the exit code is
the first failed step's (0 when all succeed); Ctrl-C stops the whole pipeline.
"""

from __future__ import annotations

import json
import sys
import time
from argparse import Namespace

from tao_client.cli._common import EXIT_LAUNCHER, EXIT_SIGINT, EXIT_SIGTERM, fail, print_table, write_text
from tao_client.cli._parser import Parser

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

    from tao_client._pipelines import Pipeline
    from tao_client.client import Client

POLL_INTERVAL = 0.2  # how often an attached run looks for the next step to start


def pipeline_parser() -> Parser:
    parser = Parser(
        prog="tao pipeline",
        description="Run a pipeline file (vars, and steps each after those it needs) as one submission; its steps are "
        "ordinary jobs of yours (`tao list`, `tao logs`). Launcher options before `pipeline` (--mounts, --notify, --pull) "
        "apply to every step.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="{run,list,show,stop}")
    run = actions.add_parser("run", help="check FILE whole, submit its steps, and follow them (-d: print the pipeline id)")
    run.add_argument("file", metavar="FILE", help="a pipeline file (YAML)")
    run.add_argument("-d", "--detach", action="store_true", help="print the pipeline's id and return")
    listing = actions.add_parser("list", help="your pipelines, newest first")
    listing.add_argument("--json", action="store_true", help="the pipelines as JSON")
    show = actions.add_parser("show", help="a pipeline's steps: status, exit code, duration")
    show.add_argument("pipeline_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="the pipeline as JSON")
    stop = actions.add_parser("stop", help="cancel every step that has not ended")
    stop.add_argument("pipeline_id", metavar="ID")
    return parser


def manage(client: Client, args: Namespace) -> int:
    if args.action == "run":
        return _run(client, args)
    if args.action == "list":
        pipelines = client.pipelines.list()
        if args.json:
            write_text(json.dumps([pipeline.data for pipeline in pipelines], indent=2) + "\n")
        elif pipelines:
            rows = [("ID", "STATUS", "EXIT", "STEPS", "FILE")]
            rows += [(p.id, p.status, _text(p.exit_code), str(len(p.steps)), p.data["source"]) for p in pipelines]
            print_table(rows)
        else:
            print("no pipelines: `tao pipeline run FILE.yaml` runs one")
        return 0
    pipeline = client.pipelines.stop(args.pipeline_id) if args.action == "stop" else client.pipelines.get(args.pipeline_id)
    if args.action == "show" and args.json:
        write_text(json.dumps(pipeline.data, indent=2) + "\n")
    else:
        _show(pipeline)
    return 0


def _run(client: Client, args: Namespace) -> int:
    try:
        with open(args.file, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{args.file}: cannot read it: {exc.strerror if isinstance(exc, OSError) else exc}")
    options = args.launcher
    pipeline = client.pipelines.run(args.file, text=text, launch_config=options.mounts, notify=options.notify, pull=options.pull)
    if args.detach:
        print(pipeline.id)
        return 0
    print(f"tao: pipeline {pipeline.id}: {', '.join(step['name'] for step in pipeline.steps)}", file=sys.stderr)
    return follow(client, pipeline.id)


def follow(client: Client, pipeline_id: str) -> int:
    """Show each step's output as it starts, under a header; the first failed step's exit code. Ctrl-C stops the pipeline."""
    from tao_client.cli.follow import attach

    shown: set[str] = set()
    try:
        while True:
            pipeline = client.pipelines.get(pipeline_id)
            ready = [step for step in _by_start(pipeline.steps) if step["name"] not in shown and _begun(step)]
            if not ready and pipeline.done:
                return _outcome(pipeline)
            for step in ready:
                shown.add(step["name"])
                if step["started_at"] is None:  # never ran: cancelled for a dependency, or it could not start
                    print(f"tao: step {step['name']}: {step['status']}: {step['error'] or 'not started'}", file=sys.stderr)
                    continue
                write_text(f"==> step {step['name']} (job {step['job_id']}) <==\n")
                attach(client, step["job_id"], cancel_on_signal=False)
                if not client.job(step["job_id"]).done:  # Ctrl-C: attach detached from the step
                    raise KeyboardInterrupt
            if not ready:
                time.sleep(POLL_INTERVAL)
    except KeyboardInterrupt:
        print(f"\ntao: stopping pipeline {pipeline_id}...", file=sys.stderr)
        client.pipelines.stop(pipeline_id)
        return EXIT_SIGINT


def _by_start(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(steps, key=lambda step: (step["started_at"] is None, str(step["started_at"] or step["finished_at"] or "")))


def _begun(step: dict[str, Any]) -> bool:
    return step["started_at"] is not None or step["status"] in ("succeeded", "failed", "cancelled", "error")


def _outcome(pipeline: Pipeline) -> int:
    if pipeline.status == "succeeded":
        return 0
    if pipeline.exit_code is not None:
        failed = next((s for s in pipeline.steps if s["status"] in ("failed", "error") and s["exit_code"] == pipeline.exit_code), None)
        if failed is not None:
            print(
                f"tao: pipeline {pipeline.id}: step {failed['name']} {failed['status']} (exit code {pipeline.exit_code})", file=sys.stderr
            )
        return pipeline.exit_code
    print(f"tao: pipeline {pipeline.id} was {pipeline.status}", file=sys.stderr)
    return EXIT_SIGTERM if pipeline.status == "cancelled" else EXIT_LAUNCHER


def _show(pipeline: Pipeline) -> None:
    print(f"pipeline {pipeline.id} ({pipeline.data['source']}): {pipeline.status}, exit code {_text(pipeline.exit_code)}")
    rows = [("STEP", "JOB", "STATUS", "EXIT", "DURATION", "AFTER")]
    for step in pipeline.steps:
        duration = step["duration_seconds"]
        rows.append(
            (
                step["name"],
                step["job_id"],
                step["status"] + (f" (attempt {step['attempt']})" if step["attempt"] > 1 else ""),
                _text(step["exit_code"]),
                f"{duration:.1f}s" if duration is not None else "-",
                ", ".join(step["after"]) or "-",
            )
        )
    print_table(rows)


def _text(value: object) -> str:
    return "-" if value is None else str(value)

"""`tao sweep run|list|show|stop`: hyperparameter sweeps, each trial an ordinary job of yours.

`run` sends the sweep file (the daemon checks it whole: a mistake names its line and key, exit
125, nothing submitted) with your launcher config; attached, it prints a line per trial as it
ends and the best at the end, and exits 0 once the sweep has completed, pruned and failed trials
included. Ctrl-C leaves the sweep running (`tao sweep stop ID` stops it); -d prints its id at once.
"""

from __future__ import annotations

import json
import sys
import time
from argparse import Namespace

from tao_client.cli._common import EXIT_SIGINT, EXIT_SIGTERM, print_table, write_text
from tao_client.cli._parser import Parser

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

    from tao_client.client import Client
    from tao_client.sweeps import Sweep

POLL_INTERVAL = 1.0
ENDED = ("complete", "pruned", "fail")


def sweep_parser() -> Parser:
    parser = Parser(
        prog="tao sweep",
        description="Hyperparameter sweeps: Optuna trials run as your jobs, pruned from the KPIs of TAO's status file.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="{run,list,show,stop}")
    run = actions.add_parser("run", help="start a sweep and show each trial as it ends: tao sweep run SWEEP.yaml [-d]")
    run.add_argument("file", metavar="SWEEP.yaml")
    run.add_argument("-d", "--detach", action="store_true", help="print the sweep's id and return at once")
    listing = actions.add_parser("list", help="your sweeps, newest first")
    listing.add_argument("--json", action="store_true", help="a JSON array of sweeps, each with its id")
    show = actions.add_parser("show", help="a sweep's trials and its best so far")
    show.add_argument("sweep_id", metavar="ID")
    show.add_argument("--json", action="store_true", help='{"id", "state", "trials": [...], "best": {...}}')
    stop = actions.add_parser("stop", help="stop a sweep: no new trials; running ones are stopped")
    stop.add_argument("sweep_id", metavar="ID")
    return parser


def manage_sweeps(client: Client, args: Namespace) -> int:
    if args.action == "run":
        return _run(client, args.file, args.detach, args.launcher.mounts)
    if args.action == "list":
        sweeps = client.sweeps.list()
        if args.json:
            write_text(json.dumps(sweeps, indent=2) + "\n")
        elif sweeps:
            rows = [(s["id"], s["state"], s["kpi"], str(s["trials_asked"]), s["created_at"], s["source"] or "") for s in sweeps]
            print_table([("SWEEP ID", "STATE", "KPI", "TRIALS", "CREATED", "FILE"), *rows])
        else:
            print("no sweeps: `tao sweep run SWEEP.yaml` starts one")
        return 0
    if args.action == "stop":
        sweep = client.sweeps.stop(args.sweep_id)
        print(f"sweep {sweep.id} {sweep.state}")
        return 0
    sweep = client.sweeps.get(args.sweep_id)
    if args.json:
        write_text(json.dumps(sweep.data, indent=2) + "\n")
    else:
        _show(sweep)
    return 0


def _run(client: Client, path: str, detach: bool, mounts: str | None) -> int:
    from tao_client.cli._common import fail

    try:
        sweep = client.sweeps.run(path, launch_config=mounts)
    except OSError as exc:
        fail(f"cannot read the sweep file {path}: {exc.strerror or exc}")
    for warning in sweep.data.get("warnings", []):
        print(f"tao: warning: {warning}", file=sys.stderr)
    if detach:
        print(sweep.id)
        return 0
    print(f"sweep {sweep.id}: {sweep.data['trials_asked']} trials, {sweep.data['parallel']} at a time (tao sweep show {sweep.id})")
    told: set[int] = set()
    try:
        while True:
            for trial in sweep.trials:
                if trial["state"] in ENDED and trial["number"] not in told:
                    told.add(trial["number"])
                    print(_trial_line(sweep, trial), flush=True)
            if sweep.done:
                break
            time.sleep(POLL_INTERVAL)
            sweep.refresh()
    except KeyboardInterrupt:
        print(f"\nthe sweep goes on: `tao sweep show {sweep.id}`, `tao sweep stop {sweep.id}`", file=sys.stderr)
        return EXIT_SIGINT
    _end(sweep)
    return EXIT_SIGTERM if sweep.state == "stopped" else 0  # stopped (tao sweep stop) before its trials were all run


def _trial_line(sweep: Sweep, trial: dict[str, Any]) -> str:
    value = f"{sweep.data['kpi']} {trial['value']:.6g}" if trial["value"] is not None else ""
    after = f"after {trial['epochs']} epochs" if trial["state"] == "pruned" else ""
    params = " ".join(f"{name}={_value(v)}" for name, v in trial["params"].items())
    said = "  ".join(part for part in (value, after, params, f"job {trial['job']}" if trial["job"] else "") if part)
    error = f"\n    {trial['error']}" if trial.get("error") else ""
    return f"trial {trial['number']:>3} {trial['state']:<8} {said}{error}"


def _end(sweep: Sweep) -> None:
    states = [trial["state"] for trial in sweep.trials]
    counts = ", ".join(f"{states.count(state)} {state}" for state in ENDED if state in states)
    print(f"sweep {sweep.id} {sweep.state}: {counts or 'no trials'}" + (f" ({sweep.data['message']})" if sweep.data.get("message") else ""))
    best = sweep.best
    if best is not None:
        params = " ".join(f"{name}={_value(v)}" for name, v in best["params"].items())
        print(f"best: trial {best['number']}, {sweep.data['kpi']} {best['value']:.6g}, {params}\n  {best['command']}")


def _show(sweep: Sweep) -> None:
    data = sweep.data
    print(f"sweep {sweep.id} {sweep.state}: {data['kpi']} ({data['direction']}), {len(sweep.trials)}/{data['trials_asked']} trials")
    names = sorted({name for trial in sweep.trials for name in trial["params"]})
    rows = [("TRIAL", "STATE", "VALUE", "EPOCHS", *(name.upper() for name in names), "JOB")]
    for trial in sweep.trials:
        value = f"{trial['value']:.6g}" if trial["value"] is not None else ""
        params = (_value(trial["params"].get(name, "")) for name in names)
        rows.append((str(trial["number"]), trial["state"], value, str(trial["epochs"]), *params, trial["job"] or ""))
    print_table(rows)
    if sweep.best is not None:
        print(f"best: trial {sweep.best['number']}, {data['kpi']} {sweep.best['value']:.6g}\n  {sweep.best['command']}")


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)

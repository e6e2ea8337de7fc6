"""`tao events JOB`: what happened to a job beside its output, one line each: image pulls, GPUs given, its
image, a time limit reached, and each try of each notification of its start and end."""

from __future__ import annotations

import json
import time
from argparse import Namespace

from tao_client.cli._common import write_text
from tao_client.cli._parser import Parser
from tao_client.cli.show import event_lines

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

    from tao_client.client import Client

POLL_SECONDS = 0.5  # how often -f asks for new events


def events_parser() -> Parser:
    parser = Parser(
        prog="tao events",
        description="A job's events, oldest first: image pulls (one line per image), GPUs given, the image it started from, "
        "a time limit reached, and each try of each notification (--notify, tao notify add).",
    )
    parser.add_argument("job_id", metavar="JOB_ID")
    parser.add_argument("--json", action="store_true", help="one JSON object a line, as the REST API gives them")
    parser.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new events until the job has ended (Ctrl-C stops sooner)"
    )
    return parser


def show_events(client: Client, args: Namespace) -> int:
    job_id = client.job(args.job_id).id  # the name as given may leave out the caller's namespace
    after = 0
    pulls: list[dict[str, Any]] = []  # a pull's events are folded into one line: printed once the pull is over
    while True:
        ended = client.job(job_id).done
        page = client.events(job_id, after)
        after = page["next_after"]
        _print(page["events"], args.json, pulls)
        if page["events"] or (args.follow and not ended):
            if not page["events"]:
                time.sleep(POLL_SECONDS)
            continue
        break
    if pulls and not args.json:
        write_text("".join(f"{line}\n" for line in event_lines(pulls)))
    return 0


def _print(events: list[dict[str, Any]], as_json: bool, pulls: list[dict[str, Any]]) -> None:
    if as_json:
        write_text("".join(json.dumps(event) + "\n" for event in events))
        return
    shown = []
    for event in events:
        if event["type"] == "pull" and not _pull_done(event):
            pulls.append(event)
            continue
        if event["type"] == "pull":
            shown += event_lines([*pulls, event])
            pulls.clear()
        else:
            shown += event_lines([event])
    write_text("".join(f"{line}\n" for line in shown))


def _pull_done(event: dict[str, Any]) -> bool:
    return event["data"].get("status") == "pulled"

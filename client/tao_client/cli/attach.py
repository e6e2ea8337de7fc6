"""`tao attach JOB`: back into a job: its terminal when it runs with -i (cli/terminal.py), else its output to its end (cli/follow.py)."""

from __future__ import annotations

import sys
from argparse import Namespace

from tao_client.cli._parser import Parser

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from tao_client.client import Client


def attach_parser() -> Parser:
    parser = Parser(
        prog="tao attach",
        description="Return to a job: its terminal when it runs with -i (Ctrl-P Ctrl-Q detaches again), else its output until it ends.",
    )
    parser.add_argument("job_id", metavar="JOB_ID")
    return parser


def attach_job(client: Client, args: Namespace) -> int:
    job = client.job(args.job_id)
    if not job.data.get("interactive") or job.done:
        from tao_client.cli.follow import attach

        # As `docker attach` to a container without input: its output, live; Ctrl-C leaves it running.
        return attach(client, job.id, cancel_on_signal=False)
    from tao_client.cli.terminal import session

    tty = bool(job.data["docker_options"].get("tty"))
    if tty:
        print("tao: attached; if no prompt shows, press Enter. Ctrl-P Ctrl-Q detaches.", file=sys.stderr)
    return session(client, job.id, tty=tty, offset=None)

"""`tao port-forward JOB [LOCAL:]REMOTE...`: ports inside a running job's container, reached from this machine.

A presentation over the SDK's `Client.forward_port` (tao_client/_forward.py), which carries each
connection: here the ports are read, the job waited for, each forward said, and the end awaited.
"""

from __future__ import annotations

import sys
import threading
import time
from argparse import Namespace

from tao_client.cli._common import EXIT_LAUNCHER, EXIT_SIGINT, error
from tao_client.cli._parser import Parser

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from tao_client.client import Client, Job

JOB_POLL_SECONDS = 0.5
DAEMON_PATIENCE_SECONDS = 30.0  # as `tao` attached to a job waits for a restarting daemon


def forward_parser() -> Parser:
    parser = Parser(
        prog="tao port-forward",
        description=(
            "Reach ports inside a job's container from this machine, through the daemon's connection "
            "(as kubectl port-forward). REMOTE alone listens on the same local port; :REMOTE or 0:REMOTE on any free one. "
            "Ends when the job ends, or on Ctrl-C."
        ),
    )
    parser.add_argument("job_id", metavar="JOB_ID")
    parser.add_argument("ports", metavar="[LOCAL:]REMOTE", nargs="+")
    parser.add_argument("--address", default="127.0.0.1", help="the local address to listen on (default 127.0.0.1)")
    return parser


def forward_ports(client: Client, args: Namespace) -> int:
    pairs = [_port_pair(text) for text in args.ports]
    job = client.job(args.job_id)  # another user's job, or none: refused here, before anything listens
    if job.status in ("queued", "pulling", "starting"):
        print(f"tao: waiting for job {job.id} to start ({job.status})...", file=sys.stderr)
        while (job := client.job(job.id)).status in ("queued", "pulling", "starting"):
            threading.Event().wait(JOB_POLL_SECONDS)
    if job.done:
        error(f"job {job.id} has ended ({job.status}): its ports are gone")
        return EXIT_LAUNCHER
    forwards = []
    try:
        for local, remote in pairs:
            try:
                forward = client.forward_port(job.id, remote, local, args.address, on_error=error)
            except OSError as exc:
                error(f"cannot listen on {args.address}:{local}: {exc.strerror or exc}")
                return EXIT_LAUNCHER
            forwards.append(forward)
            print(f"Forwarding from {args.address}:{forward.local_port} -> {remote}", flush=True)
        job = _until_done(client, job.id)
    except KeyboardInterrupt:
        return EXIT_SIGINT
    finally:
        for forward in forwards:
            forward.close()
    print(f"tao: job {job.id} ended ({job.status}); the forward is closed", file=sys.stderr)
    return 0


def _until_done(client: Client, job_id: str) -> Job:
    """The job once it has ended. A daemon out of reach for a while (a restart) is waited out: the
    connections already handed over do not need it."""
    from tao_client._errors import DaemonUnreachable

    unreachable_since = None
    while True:
        try:
            job = client.job(job_id)
            unreachable_since = None
            if job.done:
                return job
        except DaemonUnreachable:
            unreachable_since = unreachable_since or time.monotonic()
            if time.monotonic() - unreachable_since > DAEMON_PATIENCE_SECONDS:
                raise
        time.sleep(JOB_POLL_SECONDS)


def _port_pair(text: str) -> tuple[int, int]:
    local, _, remote = text.rpartition(":")
    valid = remote.isdigit() and 0 < int(remote) < 65536 and (local == "" or (local.isdigit() and int(local) < 65536))
    if not valid:
        from tao_client.cli._common import fail

        fail(f"port {text!r}: expected [LOCAL:]REMOTE, ports up to 65535, such as 8888, 9000:8888 or :8888 (any free local port)")
    if ":" not in text:
        local = remote  # kubectl's REMOTE alone: the same port here
    return int(local or 0), int(remote)

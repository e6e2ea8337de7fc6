"""`tao attach` and `tao port-forward`: into a running job, through the daemon's websockets."""

from __future__ import annotations

import socket
import sys
import threading
import time
from argparse import Namespace

from tao_client.cli._common import EXIT_LAUNCHER, EXIT_SIGINT, error
from tao_client.cli._parser import Parser

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from tao_client._websocket import WebSocket
    from tao_client.client import Client, Job

JOB_POLL_SECONDS = 0.5
DAEMON_PATIENCE_SECONDS = 30.0  # as `tao` attached to a job waits for a restarting daemon
COPY_CHUNK = 1024 * 1024
SPLICE_CHUNK = 1024 * 1024


# -- attach ----------------------------------------------------------------------------------------


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
        from tao_client.cli.attach import attach

        # As `docker attach` to a container without input: its output, live; Ctrl-C leaves it running.
        return attach(client, job.id, cancel_on_signal=False)
    from tao_client.cli.terminal import session

    tty = bool(job.data["docker_options"].get("tty"))
    if tty:
        print("tao: attached; if no prompt shows, press Enter. Ctrl-P Ctrl-Q detaches.", file=sys.stderr)
    return session(client, job.id, tty=tty, offset=None)


# -- port-forward ----------------------------------------------------------------------------------


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
    listeners = []
    for local, remote in pairs:
        try:
            listener = socket.create_server((args.address, local), backlog=128)
        except OSError as exc:
            error(f"cannot listen on {args.address}:{local}: {exc.strerror or exc}")
            return EXIT_LAUNCHER
        listeners.append(listener)
        print(f"Forwarding from {args.address}:{listener.getsockname()[1]} -> {remote}", flush=True)
        threading.Thread(target=_accept, args=(client, job.id, listener, remote), daemon=True).start()
    try:
        job = _until_done(client, job.id)
    except KeyboardInterrupt:
        return EXIT_SIGINT
    finally:
        for listener in listeners:
            listener.close()
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


def _accept(client: Client, job_id: str, listener: socket.socket, remote: int) -> None:
    while True:
        try:
            connection, _ = listener.accept()
        except OSError:
            return  # the listener closed: the job ended, or tao is leaving
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_carry, args=(client, job_id, connection, remote), daemon=True).start()


def _carry(client: Client, job_id: str, connection: socket.socket, remote: int) -> None:
    """One local connection, both ways: spliced in the kernel to the socket the daemon hands over (its
    Unix socket), else over a websocket of its own (TCP)."""
    from tao_client._errors import TaoClientError

    try:
        if client.local:
            _splice_both_ways(connection, client.port_connection(job_id, remote))
            return
        websocket = client.connect_port(job_id, remote)
    except TaoClientError as exc:
        error(f"port-forward to {remote}: {exc.message}")
        connection.close()
        return
    upstream = threading.Thread(target=_to_daemon, args=(connection, websocket), daemon=True)
    upstream.start()
    try:
        _from_daemon(websocket, connection, remote)
    finally:
        websocket.close()
        _wake(connection)
        upstream.join()
        connection.close()


def _splice_both_ways(local: socket.socket, job: socket.socket) -> None:
    job.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    upstream = threading.Thread(target=_splice, args=(local, job), daemon=True)
    upstream.start()
    try:
        _splice(job, local)
    finally:
        upstream.join()
        local.close()
        job.close()


def _splice(source: socket.socket, target: socket.socket) -> None:
    """`source`'s bytes into `target` through a pipe (os.splice: no copy through this process), then its EOF."""
    import os

    read_end, write_end = os.pipe()
    try:
        _deepen(write_end)
        while moved := os.splice(source.fileno(), write_end, SPLICE_CHUNK):
            while moved:
                moved -= os.splice(read_end, target.fileno(), moved)
        target.shutdown(socket.SHUT_WR)
    except OSError:
        _wake(source)  # one side broke: end the other direction too
        _wake(target)
    finally:
        os.close(read_end)
        os.close(write_end)


def _deepen(pipe: int) -> None:
    """A pipe of SPLICE_CHUNK, where the kernel allows it (the default is 64 KiB): fewer, larger moves."""
    import fcntl

    try:
        fcntl.fcntl(pipe, 1031, SPLICE_CHUNK)  # F_SETPIPE_SZ
    except OSError:
        pass


def _wake(connection: socket.socket) -> None:
    """Shut the connection down: a thread blocked reading it wakes, which close() alone would not do."""
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _to_daemon(connection: socket.socket, websocket: WebSocket) -> None:
    try:
        while data := connection.recv(COPY_CHUNK):
            websocket.send_binary(data)
        websocket.send_text('{"type": "eof"}')
    except OSError:
        pass  # either side closed: the other thread ends the connection


def _from_daemon(websocket: WebSocket, connection: socket.socket, remote: int) -> None:
    import json

    from tao_client._websocket import BINARY, Closed

    try:
        while True:
            opcode, payload = websocket.receive()
            if opcode == BINARY:
                connection.sendall(payload)
                continue
            message = json.loads(payload)
            if message.get("type") == "eof":
                connection.shutdown(socket.SHUT_WR)
            elif message.get("type") == "error":
                error(f"port-forward to {remote}: {message.get('message')}")
    except (Closed, OSError):
        return

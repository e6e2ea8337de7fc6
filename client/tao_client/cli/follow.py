"""Copying a job's output to the terminal as it runs, and turning its end into an exit code."""

from __future__ import annotations

import signal
import sys
import time

from tao_client._errors import DaemonUnreachable, TaoClientError
from tao_client.cli._common import EXIT_LAUNCHER, EXIT_SIGINT, EXIT_SIGTERM, error

RECONNECT_SECONDS = 30.0

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from types import FrameType

    from tao_client.cli.pull_progress import PullWatcher
    from tao_client.client import Client, Job


class Terminated(Exception):
    """SIGTERM, raised in the main thread like KeyboardInterrupt is for SIGINT."""


def _raise_terminated(_signum: int, _frame: FrameType | None) -> None:
    raise Terminated


class _Output:
    """The terminal's stdout; a closed pipe (`tao ... | head`) stops the copy, not the job."""

    def __init__(self, progress: PullWatcher | None = None) -> None:
        self.received = 0
        self._closed = False
        self._progress = progress

    def write(self, chunk: bytes) -> None:
        if self._progress is not None:  # the task speaks: any pull is over
            self._progress.stop()
            self._progress = None
        self.received += len(chunk)
        if self._closed:
            return
        try:
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            self._closed = True

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def attach(client: Client, job_id: str, *, cancel_on_signal: bool, offset: int = 0, progress: PullWatcher | None = None) -> int:
    """Follow the job to its end. Ctrl-C or SIGTERM cancels it when `cancel_on_signal`, else detaches."""
    signal.signal(signal.SIGTERM, _raise_terminated)
    output = _Output(progress)
    output.received = offset
    try:
        return exit_code(_follow(client, job_id, output))
    except (KeyboardInterrupt, Terminated) as interrupt:
        code = EXIT_SIGINT if isinstance(interrupt, KeyboardInterrupt) else EXIT_SIGTERM
        if cancel_on_signal:
            _cancel_and_drain(client, job_id, output)
        return code
    except DaemonUnreachable as exc:
        error(f"{exc.message}\nthe job goes on under the daemon; `tao logs -f {job_id}` attaches again")
        return EXIT_LAUNCHER


def _follow(client: Client, job_id: str, output: _Output) -> Job:
    """Copy the job's output until it ends, reconnecting from the last byte if the stream breaks."""
    deadline = None
    while True:
        try:
            for chunk in client.follow_logs(job_id, output.received):
                output.write(chunk)
                deadline = None
            job = client.job(job_id)
            if job.done:
                output.finish()
                return job
        except DaemonUnreachable:
            # A restarting daemon drops streams; it resumes the job, so keep trying for a while.
            deadline = deadline or time.monotonic() + RECONNECT_SECONDS
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def _cancel_and_drain(client: Client, job_id: str, output: _Output) -> None:
    """Stop the job and show its last words; returns once its container is gone. A second signal gives up waiting."""
    print(f"\ntao: stopping job {job_id}...", file=sys.stderr)
    try:
        client.cancel(job_id)
        for chunk in client.follow_logs(job_id, output.received):
            output.write(chunk)
    except (KeyboardInterrupt, Terminated):
        print(f"tao: not waiting; the daemon goes on stopping job {job_id}", file=sys.stderr)
    except TaoClientError as exc:
        error(f"could not confirm that job {job_id} stopped: {exc.message}")


def exit_code(job: Job) -> int:
    """The task's own exit code; 125/126/127 as `docker run` when it never ran."""
    if job.status == "error":
        error(job.error or "the job failed to start")
        return job.exit_code if job.exit_code is not None else EXIT_LAUNCHER
    if job.status == "failed" and job.error:  # the daemon stopped it: at its time limit
        error(job.error)
        return job.exit_code or EXIT_SIGTERM
    if job.status == "cancelled":
        print(f"tao: job {job.id} was cancelled{': ' + job.error if job.error else ''}", file=sys.stderr)
        # Even a task that exits 0 on SIGTERM did not finish its work.
        return job.exit_code if job.exit_code else EXIT_SIGTERM
    return job.exit_code if job.exit_code is not None else EXIT_LAUNCHER

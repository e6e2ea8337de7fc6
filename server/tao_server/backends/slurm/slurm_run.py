"""One job's Slurm batch job, as the runner sees a run: submitted, its output followed, its end read, cancelled, released.

Before sbatch the run's id is the batch job's name; after, Slurm's job id. The job's output is
the file its script writes in the job's directory under the shared dir, read from an offset as it
grows (`output`): while the job pends, the follower waits on the monitor's news rather than the
file; once the job has ended (its script's `.exit` file, or Slurm's word) what was written just
before is read and the stream ends. After a node failure the output is read on until the node's
sweep has run (sweep.py).
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from tao_server.backends.base import OutputStream, RunExit
from tao_server.backends.entrypoint import HEAD_SIZE, init_exec_failure
from tao_server.backends.slurm.ends import slurm_end
from tao_server.backends.slurm.script import EXIT_SUFFIX, GRACE_SUFFIX, OUTPUT_SUFFIX, SIGNALLED_SUFFIX, BatchJob
from tao_server.backends.slurm.state import Answer, JobState
from tao_server.backends.slurm.sweep import SWEEP_ID_FILE, SWEEP_SCRIPT, render_sweep
from tao_server.errors import BackendError, BackendUnavailable, LaunchFailure

if TYPE_CHECKING:
    from tao_server.backends.slurm.slurm_backend import SlurmBackend

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024
FOLLOW_INTERVAL = 0.1  # seconds between looks at a quiet output file
PENDING_RECHECK = 5.0  # a pending job's follower wakes on the monitor's news, or after this
KILL_MARGIN = 15.0  # seconds past the grace before scancel kills what is left
SLURM_ID_FILE = "slurm-id"
NO_PLAN = timedelta(days=300)  # a planned start this far off is Slurm's stand-in for "after an unlimited job"
SCRIPT_FILE = "job.sbatch"

Owner = tuple[int, int, tuple[int, ...]]


class SlurmRun:
    """One job's batch job. Before sbatch its run id is the batch job's name; after, Slurm's job id."""

    def __init__(self, backend: SlurmBackend, batch: BatchJob, job_dir: Path, owner: Owner | None, slurm_id: str | None = None) -> None:
        self._backend = backend
        self._monitor = backend.monitor
        self.batch = batch
        self.job_dir = job_dir
        self.owner = owner
        self.slurm_id = slurm_id
        self._watching = False
        self._cut = False  # its node failed: the output goes on until the task is gone (sweep.py)
        self._cancelled = False  # this daemon cancelled it: Slurm's CANCELLED is its own doing, not someone else's

    @property
    def run_id(self) -> str:
        return self.slurm_id or self.batch.name

    @property
    def output_path(self) -> Path:
        return Path(self.batch.path(OUTPUT_SUFFIX))

    def start(self) -> None:
        answer = self._backend.commands.run(["sbatch", "--parsable", str(self.job_dir / SCRIPT_FILE)], as_user=self.owner)
        if answer.returncode != 0:
            said = answer.stderr.strip() or f"sbatch exited {answer.returncode}"
            if "Unable to contact slurm controller" in said or "Socket timed out" in said:
                raise BackendUnavailable(f"Slurm did not take the job: {said}")
            raise LaunchFailure(f"Slurm refused the job: {said}")
        self.slurm_id = answer.stdout.strip().split(";")[0]
        write_private(self.job_dir / SLURM_ID_FILE, self.slurm_id, 0o644)
        self.watch()

    def watch(self) -> None:
        if not self._watching and self.slurm_id is not None:
            self._monitor.watch(self.slurm_id)
            if sweep_id := self._sweep_id():
                self._monitor.watch(sweep_id)
            self._watching = True

    def wait_running(self) -> bool:
        """Return once Slurm runs the job (True), or it ended while pending (False: cancelled, timed out in the queue)."""
        slurm_id = self._submitted()
        self._monitor.wait(lambda: self.ended() or self._left_queue())
        state = self._monitor.state(slurm_id)
        return self._exit_path.exists() or state is None or state.nodes is not None

    def _left_queue(self) -> bool:
        state = self.state()
        return state is not None and not state.pending

    def output(self, offset: int = 0) -> OutputStream:
        return _FileOutput(self._follow(offset))

    def _follow(self, offset: int) -> Iterator[bytes]:
        position = offset
        while True:
            chunk = self._read(position)
            if chunk:
                position += len(chunk)
                yield chunk
                continue
            if self._output_complete():
                while chunk := self._read(position):  # what was written just before the end
                    position += len(chunk)
                    yield chunk
                return
            if self._pending():  # nothing can be printed before Slurm starts it: wait for the monitor, not the file
                self._monitor.wait(lambda: not self._pending(), timeout=PENDING_RECHECK)
                continue
            self._monitor.wait(lambda at=position: self._output_complete() or self._size() > at, timeout=FOLLOW_INTERVAL)  # type: ignore[misc]

    def _output_complete(self) -> bool:
        """Whether no more output can come: the job ended; after a node failure, once its script ended or its node was swept."""
        if not self._cut:
            return self.ended()
        sweep_id = self._sweep_id()
        return self._exit_path.exists() or not sweep_id or self._backend.swept(sweep_id)

    def _pending(self) -> bool:
        state = self.state()
        return state is not None and state.pending

    def _read(self, position: int) -> bytes:
        try:
            with open(self.output_path, "rb") as output:
                output.seek(position)
                return output.read(READ_SIZE)
        except FileNotFoundError:
            return b""

    def _size(self) -> int:
        try:
            return self.output_path.stat().st_size
        except FileNotFoundError:
            return 0

    @property
    def _exit_path(self) -> Path:
        return Path(self.batch.path(EXIT_SUFFIX))

    def ended(self) -> bool:
        """Whether the job is over: its script recorded an exit code, or Slurm says it ended or lost it."""
        if self.slurm_id is None:
            return False
        return self._exit_path.exists() or self._slurm_done()

    def _slurm_done(self) -> bool:
        """Whether Slurm is done with the job: it ended there, or Slurm lost it."""
        state = self.state()
        return self.slurm_id is not None and ((state is not None and state.ended) or self._monitor.lost(self.slurm_id))

    def state(self) -> JobState | None:
        return self._monitor.state(self.slurm_id) if self.slurm_id is not None else None

    def condition(self) -> str | None:
        """Why the job does not run yet, as Slurm says: "pending in Slurm: Resources"."""
        state = self.state()
        if state is None or not state.pending:
            return None
        if state.state == "CONFIGURING":
            return "starting in Slurm: its nodes are being configured"
        return f"pending in Slurm: {state.reason}" if state.reason else "pending in Slurm"

    def expected_start(self) -> datetime | None:
        """When Slurm's backfill plans to start the pending job: squeue's StartTime (%S, what `squeue --start`
        shows), read by the monitor's one squeue per tick for every job; None while Slurm has no plan."""
        state = self.state()
        planned = slurm_time(state.start_time) if state is not None and state.pending else None
        if planned is not None and planned - datetime.now(UTC) > NO_PLAN:
            return None  # behind a job with no time limit, which Slurm's backfill takes to end a year from now
        return planned

    def recorded_exit(self) -> int | None:
        try:
            return int(self._exit_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def signalled(self) -> bool:
        """Whether a TERM or INT reached the script: Slurm, not the task, may have ended the job."""
        return Path(self.batch.path(SIGNALLED_SUFFIX)).exists()

    def wait(self) -> RunExit:
        slurm_id = self._submitted()
        self._monitor.wait(self.ended)
        recorded, signalled = self.recorded_exit(), self.signalled()
        if recorded is not None and signalled:  # a signal ended it: Slurm's end state says whose
            self._monitor.hurry()
            self._monitor.wait(self._slurm_done)
        state = self.state()
        end = slurm_end(slurm_id, recorded, signalled, state if state is not None and state.ended else None)
        if self._cancelled and end.interrupted is not None and end.interrupted.status == "cancelled":
            return RunExit(end.exit_code)
        if end.cut and state is not None:
            self._cut = True
            self._sweep(slurm_id, state)
        if end.interrupted is None and end.failure is None and end.exit_code is not None:
            failure = init_exec_failure(end.exit_code, self._read(0)[:HEAD_SIZE])
            if failure is not None:
                return RunExit(failure.exit_code, failure.message)
        return end

    def _submitted(self) -> str:
        if self.slurm_id is None:
            raise LaunchFailure("the job was never submitted to Slurm")
        self.watch()
        return self.slurm_id

    def _sweep(self, slurm_id: str, state: JobState) -> None:
        """Submit the job's sweep to its failed node (once): Slurm runs it when the node is back (sweep.py)."""
        if self._sweep_id() is not None:
            return
        node = state.batch_host or state.nodes
        if node is None or any(c in node for c in "[],"):
            log.warning(
                "Slurm job %s failed on %s: no single node to sweep; remove container %s there by hand", slurm_id, node, self.batch.name
            )
            write_private(self.job_dir / SWEEP_ID_FILE, "", 0o644)
            return
        options = self._backend.config
        script = render_sweep(self.batch, slurm_id, node, options.partition, options.sbatch_args)
        write_private(self.job_dir / SWEEP_SCRIPT, script, 0o600)
        if self.owner is not None and os.geteuid() == 0:
            os.chown(self.job_dir / SWEEP_SCRIPT, self.owner[0], self.owner[1])
        answer = self._backend.commands.run(["sbatch", "--parsable", str(self.job_dir / SWEEP_SCRIPT)], as_user=self.owner)
        sweep_id = answer.stdout.strip().split(";")[0] if answer.returncode == 0 else ""
        if not sweep_id:
            log.warning("Slurm refused the sweep of job %s on %s (%s); remove container %s there by hand",
                        slurm_id, node, answer.stderr.strip(), self.batch.name)  # fmt: skip
        write_private(self.job_dir / SWEEP_ID_FILE, sweep_id, 0o644)
        if sweep_id:
            log.info("Slurm job %s failed on %s: sweep job %s removes what is left of it once the node is back", slurm_id, node, sweep_id)
            self._monitor.watch(sweep_id)

    def _sweep_id(self) -> str | None:
        """The sweep job's id; "" when none could be submitted; None when the job needs none."""
        try:
            return (self.job_dir / SWEEP_ID_FILE).read_text().strip()
        except FileNotFoundError:
            return None

    def cancel(self, grace: float) -> None:
        if self.slurm_id is None:
            return
        self._cancelled = True
        write_private(Path(self.batch.path(GRACE_SUFFIX)), str(math.ceil(max(0.0, grace))), 0o644)  # the script's docker stop reads it
        self._signal_term()
        self._monitor.hurry()
        if self._monitor.wait(self.ended, timeout=grace + KILL_MARGIN):
            return
        self._scancel()
        self._monitor.wait(self.ended, timeout=60)

    def release(self) -> None:
        if self.slurm_id is not None and not self.ended():
            self._scancel()
            self._monitor.hurry()
            self._monitor.wait(self.ended, timeout=60)
        sweep_id = self._sweep_id()
        # Its node failed and is not back: the job's files stay until the sweep has run there.
        sweeping = bool(sweep_id) and not self._backend.swept(sweep_id or "")
        if self._watching and self.slurm_id is not None:
            self._monitor.unwatch(self.slurm_id)
            if sweep_id:
                self._monitor.unwatch(sweep_id)
            self._watching = False
        if sweeping and sweep_id:
            self._backend.remove_when_swept(self.job_dir, sweep_id)
            return
        shutil.rmtree(self.job_dir, ignore_errors=True)

    def _signal_term(self) -> None:
        """TERM to the batch script, which stops its container with the grace. A job that does not run yet
        has no script to signal: it only leaves the queue (scancel --batch would retry, "Job can not be
        altered now", for as long as it pends)."""
        assert self.slurm_id is not None
        state = self.state()
        if state is None or state.pending:  # not seen running yet: a plain scancel, which TERMs a script that just started too
            self._scancel()
            return
        options = ("--batch", "--signal=TERM")
        answer = self._backend.commands.run(["scancel", *options, self.slurm_id])
        if answer.returncode != 0 and "can not be altered now" in answer.stderr:
            self._scancel()
            return
        self._check(answer, options)

    def _scancel(self, *options: str) -> None:
        assert self.slurm_id is not None
        self._check(self._backend.commands.run(["scancel", *options, self.slurm_id]), options)

    def _check(self, answer: Answer, options: tuple[str, ...]) -> None:
        if answer.returncode != 0 and "already completing or completed" not in answer.stderr and "Invalid job id" not in answer.stderr:
            raise BackendError(f"scancel {shlex.join(options)} {self.slurm_id}: {answer.stderr.strip()}")


class _FileOutput:
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


def slurm_time(text: str | None) -> datetime | None:
    """A time as Slurm prints it ("2026-12-07T14:05:00", the cluster's local time), with its zone; None for none."""
    try:
        return datetime.fromisoformat(text).astimezone() if text else None
    except ValueError:
        return None


def write_private(path: Path, text: str, mode: int) -> None:
    """Write `text` to a file made with `mode` (a job's files are its owner's, or the daemon's alone)."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as file:
        file.write(text)

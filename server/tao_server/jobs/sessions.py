"""Interactive sessions on a job's run: its terminal (stdin and size) and connections to its ports.

The API's websockets (api/sessions.py) carry the bytes; this decides who may open what, and
when: a terminal once the job's run has started (a session may wait for that), a port only
while the run runs. A terminal's output is not here: it is the job's log, followed like any
reader follows it (jobs/logs.py), so a session that attaches late, or again, replays what it
missed from the offset it asks for.

Every call into the backend blocks (the engine's API, a connect, the pace at which a task reads
its input): they run on a pool of threads of their own, so a task that never reads its input, or
a port that never accepts, holds one of those and never the daemon's shared threads.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from tao_server.access.caller import Caller
from tao_server.backends import AttachableRun, Terminal
from tao_server.errors import NotAttachable, PolicyRefusal
from tao_server.jobs.runner import JobRunner
from tao_server.jobs.service import JobService
from tao_server.models import Job

START_POLL_FIRST = 0.02  # seconds between looks while a terminal waits for its job's run to start, doubling
START_POLL_MAX = 0.5
CONNECT_TIMEOUT = 10.0
SESSION_THREADS = 64
T = TypeVar("T")


class JobSessions:
    def __init__(self, jobs: JobService, runner: JobRunner, attaches: bool) -> None:
        self._jobs = jobs
        self._runner = runner
        self._attaches = attaches
        self._threads = ThreadPoolExecutor(max_workers=SESSION_THREADS, thread_name_prefix="session")

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` on the sessions' own threads."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)

    def terminal_job(self, job_id: str, caller: Caller) -> Job:
        """The job whose terminal `caller` asks for: their own (or any, for an admin), started with -i.

        A job that has ended still answers: the session replays its output and says how it ended.
        """
        job = self._jobs.get(job_id, caller)
        self._check_backend(job)
        if not job.interactive:
            raise NotAttachable(
                f"job {job.id} was not started with -i: its input is closed; `tao logs -f {job.id}` follows its output",
                field="id",
            )
        return job

    def forward_job(self, job_id: str, caller: Caller) -> tuple[Job, AttachableRun]:
        """The job whose ports `caller` asks to reach, and its run: only its owner's, an admin's included, while it runs."""
        job = self._jobs.get(job_id, caller)
        if job.owner_uid != caller.uid:
            raise PolicyRefusal(f"job {job.id} is not yours: only its owner may reach its ports", field="id")
        self._check_backend(job)
        run = self._runner.started_run(job.id)
        if run is None:
            state = "has ended" if job.status.terminal or self._runner.is_finished(job.id) else "has not started yet"
            raise NotAttachable(f"job {job.id} {state} ({job.status.value}): its ports are reached while it runs", field="id")
        return job, run

    async def open_terminal(self, job: Job) -> Terminal | None:
        """The run's terminal, once the run has started; None when the job ends first."""
        delay = START_POLL_FIRST
        while (run := self._runner.started_run(job.id)) is None:
            if self._runner.is_finished(job.id):
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, START_POLL_MAX)
        return await self.call(run.open_terminal)

    async def connect(self, run: AttachableRun, port: int) -> socket.socket:
        """A connection to `port` inside the run."""
        return await self.call(run.connect, port, CONNECT_TIMEOUT)

    def _check_backend(self, job: Job) -> None:
        if not self._attaches:
            raise NotAttachable(f"job {job.id} runs in batch on this daemon's backend: no terminal or ports reach it", field="id")

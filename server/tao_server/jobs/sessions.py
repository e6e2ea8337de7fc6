"""Interactive sessions on a job's run: its terminal (stdin and size) and connections to its ports.

The API's websockets (api/sessions.py) carry the bytes; this decides who may open what, and
when: only once the job's run has started, and never after it ended. A terminal's output is
not here: it is the job's log, followed like any reader follows it (jobs/logs.py), so a session
that attaches late, or again, replays what it missed from the offset it asks for.
"""

from __future__ import annotations

import asyncio
import socket

from tao_server.access.caller import Caller
from tao_server.backends import AttachableRun, Terminal
from tao_server.errors import NotAttachable, PolicyRefusal
from tao_server.jobs.runner import JobRunner
from tao_server.jobs.service import JobService
from tao_server.models import Job

START_POLL = 0.02  # seconds between looks while a session waits for its job's run to start
CONNECT_TIMEOUT = 10.0


class JobSessions:
    def __init__(self, jobs: JobService, runner: JobRunner, attaches: bool) -> None:
        self._jobs = jobs
        self._runner = runner
        self._attaches = attaches

    def terminal_job(self, job_id: str, caller: Caller) -> Job:
        """The job whose terminal `caller` asks for: their own (or any, for an admin), started with -i."""
        job = self._jobs.get(job_id, caller)
        self._check_backend(job)
        if not job.interactive:
            raise NotAttachable(
                f"job {job.id} was not started with -i: its input is closed; `tao logs -f {job.id}` follows its output",
                field="id",
            )
        return job

    def forward_job(self, job_id: str, caller: Caller) -> Job:
        """The job whose ports `caller` asks to reach: only its owner's, an admin's included."""
        job = self._jobs.get(job_id, caller)
        if job.owner_uid != caller.uid:
            raise PolicyRefusal(f"job {job.id} is not yours: only its owner may reach its ports", field="id")
        self._check_backend(job)
        if job.status.terminal:
            raise NotAttachable(f"job {job.id} has ended ({job.status.value}): its ports are gone", field="id")
        return job

    async def open_terminal(self, job: Job) -> Terminal | None:
        """The run's terminal, once the run has started; None when the job ends first."""
        run = await self._started(job)
        return None if run is None else await asyncio.to_thread(run.open_terminal)

    async def connect(self, job: Job, port: int) -> socket.socket:
        """A connection to `port` inside the job's run; NotAttachable when the job ends before it starts."""
        run = await self._started(job)
        if run is None:
            raise NotAttachable(f"job {job.id} ended before its ports could be reached", field="id")
        return await asyncio.to_thread(run.connect, port, CONNECT_TIMEOUT)

    async def _started(self, job: Job) -> AttachableRun | None:
        while (run := self._runner.started_run(job.id)) is None:
            if self._runner.is_finished(job.id):
                return None
            await asyncio.sleep(START_POLL)
        return run

    def _check_backend(self, job: Job) -> None:
        if not self._attaches:
            raise NotAttachable(f"job {job.id} runs in batch on this daemon's backend: no terminal or ports reach it", field="id")

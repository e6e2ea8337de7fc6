"""Interactive sessions on a job's run: its terminal (stdin and size) and connections to its ports.

The API's websockets (api/terminal.py, api/ports.py) carry the bytes (terminal_io.py, port_bridge.py); this decides who may open what, and
when: a terminal once the job's run has started (a session may wait for that), a port only
while the run runs. A terminal's output is not here: it is the job's log, followed like any
reader follows it (jobs/log_files.py), so a session that attaches late, or again, replays what it
missed from the offset it asks for.

No user can hurt another's sessions with theirs. Each session counts against bounds on its
user's and its job's sessions (`max_sessions_per_user`, `max_sessions_per_job`): past either,
a new one is refused, naming the setting. Each has a thread of its own for its blocking calls
into the backend (session_worker.py), so a task that never reads its input holds its own
session's thread and nothing else. When the job ends, or the daemon stops, every session of
it is told (`Session.ended`), and its route ends it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from tao_server.access.caller import Caller
from tao_server.backends import AttachableRun, Terminal
from tao_server.errors import NotAttachable, PolicyRefusal, TooManySessions
from tao_server.interactive.session_worker import SessionWorker
from tao_server.jobs.runner import JobRunner
from tao_server.jobs.service import JobService
from tao_server.models import Job

START_POLL_FIRST = 0.02  # seconds between looks while a terminal waits for its job's run to start, doubling
START_POLL_MAX = 0.5
CONNECT_TIMEOUT = 10.0
T = TypeVar("T")


class Session:
    """One terminal or forwarded connection of a user into a job, counted until it is closed.

    `ended` is set once the job has ended or the daemon stops: the route then ends the session.
    """

    def __init__(self, job_id: str, uid: int | None, on_close: Callable[[Session], None]) -> None:
        self.job_id = job_id
        self.uid = uid
        self.ended = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._worker = SessionWorker(f"session-{job_id}")
        self._on_close = on_close
        self._closed = False

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on this session's own thread."""
        return await self._worker.call(fn, *args)

    def end(self) -> None:
        """Tell the session's route to end it; from any thread."""
        try:
            self._loop.call_soon_threadsafe(self.ended.set)
        except RuntimeError:  # the loop has closed: its routes are gone
            pass

    def close(self) -> None:
        """No longer counted; its thread ends once its last call returns."""
        if not self._closed:
            self._closed = True
            self._worker.stop()
            self._on_close(self)


class JobSessions:
    def __init__(self, jobs: JobService, runner: JobRunner, attaches: bool, max_per_user: int, max_per_job: int) -> None:
        self._jobs = jobs
        self._runner = runner
        self._attaches = attaches
        self._max_per_user = max_per_user
        self._max_per_job = max_per_job
        self._lock = threading.Lock()  # the runner says a job ended from its own threads
        self._by_job: dict[str, set[Session]] = {}
        self._by_user: Counter[int | None] = Counter()
        runner.on_end(self._job_ended)

    def close(self) -> None:
        """The daemon stops: every session is told to end."""
        with self._lock:
            open_now = [session for sessions in self._by_job.values() for session in sessions]
        for session in open_now:
            session.end()

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

    def open(self, job: Job, caller: Caller) -> Session:
        """A session of `caller` in `job`, counted until it is closed; TooManySessions past either bound."""
        with self._lock:
            self._check_bounds(job.id, caller)
            session = Session(job.id, caller.uid, self._forget)
            self._by_job.setdefault(job.id, set()).add(session)
            self._by_user[caller.uid] += 1
        if self._runner.is_finished(job.id):  # it ended before the session was counted: it is told at once
            session.end()
        return session

    async def open_terminal(self, job: Job, session: Session) -> Terminal | None:
        """The run's terminal, once the run has started; None when the job ends first."""
        delay = START_POLL_FIRST
        while (run := self._runner.started_run(job.id)) is None:
            if self._runner.is_finished(job.id):
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, START_POLL_MAX)
        return await session.call(run.open_terminal)

    async def connect(self, run: AttachableRun, port: int, session: Session) -> socket.socket:
        """A connection to `port` inside the run."""
        return await session.call(run.connect, port, CONNECT_TIMEOUT)

    def _check_bounds(self, job_id: str, caller: Caller) -> None:
        mine = self._by_user[caller.uid]
        if mine >= self._max_per_user:
            raise TooManySessions(
                f"you have {mine} sessions open (terminals and forwarded connections), as many as this daemon allows "
                f"one user (TAO_MAX_SESSIONS_PER_USER={self._max_per_user}); close one and try again"
            )
        in_job = len(self._by_job.get(job_id, ()))
        if in_job >= self._max_per_job:
            raise TooManySessions(
                f"job {job_id} has {in_job} sessions open (terminals and forwarded connections), as many as this daemon "
                f"allows one job (TAO_MAX_SESSIONS_PER_JOB={self._max_per_job}); close one and try again"
            )

    def _forget(self, session: Session) -> None:
        with self._lock:
            sessions = self._by_job.get(session.job_id)
            if sessions is not None:
                sessions.discard(session)
                if not sessions:
                    del self._by_job[session.job_id]
            self._by_user[session.uid] -= 1
            if self._by_user[session.uid] <= 0:
                del self._by_user[session.uid]

    def _job_ended(self, job_id: str) -> None:
        with self._lock:
            ending = list(self._by_job.get(job_id, ()))
        for session in ending:
            session.end()

    def _check_backend(self, job: Job) -> None:
        if not self._attaches:
            raise NotAttachable(f"job {job.id} runs in batch on this daemon's backend: no terminal or ports reach it", field="id")

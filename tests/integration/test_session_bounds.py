"""A neighbour floods terminals and forwards into a job that never reads: nobody else waits, and SIGTERM still ends the daemon.

Two real accounts on one shared daemon: the first runs tests/integration/session_client.py,
which opens 70 terminals into a job that never reads its input and 40 connections to a port
whose server never reads, writing 64 KiB frames into every one the daemon took; the second
types on its own job's terminal, sends a line through a new connection to its job's port and
runs `tao list`, each answered within a second while the flood goes on. The daemon's bounds
(32 sessions a job, 64 a user: the defaults) refuse the rest with 4429, naming the setting.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tao_server.testing.daemon import Daemon, executable
from tests.integration.conftest import local_account, tao_as, until

pytestmark = pytest.mark.integration

CLIENT = Path(__file__).with_name("session_client.py")
STOP_TIMEOUT = 5.0  # the test daemons' --stop-timeout (tao_server.testing.daemon)
PROMPT = 1.0  # seconds: what "answers at once" means for the neighbour, whatever the flood
PF_EXITING = 0x4  # linux/sched.h: the process is in do_exit()
ANSWER_TIMEOUT = 120.0  # a safety net for the client's answers, never a bet on how long one takes


class SessionClient:
    """session_client.py running as `user` against `daemon`, driven one command a line."""

    def __init__(self, daemon: Daemon, user: tuple[str, int, int]) -> None:
        _, uid, gid = user
        self.process = subprocess.Popen(
            ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", sys.executable, str(CLIENT), str(daemon.socket)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"PATH": os.environ["PATH"], "HOME": str(daemon.home)},
        )

    def ask(self, *command: object) -> Any:
        """The client's answer; an error with what it said on stderr if it gives none (a safety timeout only)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write((" ".join(map(str, command)) + "\n").encode())
        self.process.stdin.flush()
        if not select.select([self.process.stdout], [], [], ANSWER_TIMEOUT)[0]:
            self.close()
            raise AssertionError(f"no answer to {command}: {self.process.stderr.read().decode()}")  # type: ignore[union-attr]
        line = self.process.stdout.readline()
        assert line, f"the session client ended: {self.process.stderr.read().decode()}"  # type: ignore[union-attr]
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def clients() -> Iterator[list[SessionClient]]:
    made: list[SessionClient] = []
    yield made
    for client in made:
        client.close()


def started(daemon: Daemon, user: tuple[str, int, int], *args: str) -> str:
    run = tao_as(daemon, user, "-d", *args)
    assert run.returncode == 0, run.stderr
    job_id = run.stdout.decode().strip()
    daemon.wait_for_status(job_id, ("running",))
    return job_id


def test_a_flooding_neighbour_holds_nobody_else_back_and_sigterm_still_ends_the_daemon_in_time(
    shared_daemon: Daemon, unprivileged_user: tuple[str, int, int], clients: list[SessionClient]
) -> None:
    flooder, neighbour = unprivileged_user, local_account("tao-test-peer")
    deaf = started(shared_daemon, flooder, "-i", "detectnet_v2", "run", "sleep", "100000")
    greeting = "nc -ll -p 9000 -e sh -c 'echo hello; exec sleep 100000'"  # each connection greeted, then never read
    mute_port = started(shared_daemon, flooder, "detectnet_v2", "run", "sh", "-c", greeting)
    echoing = started(shared_daemon, neighbour, "-it", "detectnet_v2", "run", "sh", "-c", "nc -ll -p 9000 -e cat & exec cat")
    flood, probe = SessionClient(shared_daemon, flooder), SessionClient(shared_daemon, neighbour)
    clients += [flood, probe]

    terminals = flood.ask("flood", "terminal", deaf, 70)
    assert (terminals["accepted"], terminals["refused"]) == (32, {"4429": 38})
    assert terminals["messages"] == [
        f"job {deaf} has 32 sessions open (terminals and forwarded connections), as many as this daemon allows one job "
        "(TAO_MAX_SESSIONS_PER_JOB=32); close one and try again"
    ]
    ports = flood.ask("flood", "port", mute_port, 9000, 40)
    assert (ports["accepted"], ports["refused"]) == (32, {"4429": 8})
    assert "you have 64 sessions open" in ports["messages"][0] and "TAO_MAX_SESSIONS_PER_USER=64" in ports["messages"][0]

    def neighbour_answers_promptly() -> None:
        echo = probe.ask("echo", echoing, 9000)
        started_at = time.monotonic()
        listed = tao_as(shared_daemon, neighbour, "list")
        listing = time.monotonic() - started_at
        assert listed.returncode == 0 and echoing.encode() in listed.stdout
        assert max(echo["terminal"], echo["port"], listing) < PROMPT, {**echo, "list": listing}

    until(lambda: _answers(probe, echoing), "the neighbour's echo server answers")
    for _ in range(5):
        neighbour_answers_promptly()

    # The flooded job's end ends its sessions and frees their places; the neighbour still answers at once.
    assert shared_daemon.tao("stop", deaf).returncode == 0
    until(lambda: flood.ask("count")["terminal"] == 0, "the cancelled job's terminals are closed")
    # The user's count fell by the 32 that ended: one more forward now meets the job's bound, not the user's.
    assert "TAO_MAX_SESSIONS_PER_JOB=32" in flood.ask("flood", "port", mute_port, 9000, 1)["messages"][0]
    assert flood.ask("flood", "terminal", echoing, 1)["refused"] == {"4404": 1}  # another's job: not even seen
    neighbour_answers_promptly()

    _stop_holding_sessions_open(shared_daemon)


def _answers(probe: SessionClient, job_id: str) -> bool:
    try:
        probe.ask("echo", job_id, 9000)
    except json.JSONDecodeError:
        return False
    return True


def _stop_holding_sessions_open(daemon: Daemon) -> None:
    """SIGTERM with 32 flooded forwards open: the process ends within the stop timeout, and the data dir's lock
    is held until it has: no flock on it succeeds while the process lives, and a second daemon is refused."""
    process = daemon.process
    assert process is not None
    pidfd = os.pidfd_open(process.pid)
    lock = os.open(daemon.data_dir / "daemon.lock", os.O_RDWR)
    second_socket = daemon.root / "second.sock"
    try:
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        second = subprocess.Popen(
            [executable("tao-server"), "--data-dir", str(daemon.data_dir), "--socket", str(second_socket), "--gpus", "none"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        while not _ended(pidfd, wait=0.01):
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # held: by the daemon, as it should be, or by the second one once the first has ended
            assert _exiting(process.pid), "the data dir's lock was free while the daemon still ran"
            fcntl.flock(lock, fcntl.LOCK_UN)
        elapsed = time.monotonic() - signalled
    finally:
        os.close(lock)
        os.close(pidfd)
    assert elapsed < STOP_TIMEOUT, f"the daemon took {elapsed:.1f} s to end after SIGTERM"
    assert process.wait() == 0
    log = daemon.server_log()
    assert "Traceback" not in log, log[-6000:]
    daemon.process = None
    _refused_while_the_first_ran(second, second_socket, daemon.data_dir)


def _refused_while_the_first_ran(second: subprocess.Popen[str], second_socket: Path, data_dir: Path) -> None:
    """The second daemon, started as the first began to stop, was refused; or, had it reached the lock only after
    the first ended (a slow machine), it serves, which is its right: the lock checks above show it could not sooner."""
    until(lambda: second.poll() is not None or second_socket.exists(), "the second daemon is refused, or serves")
    if second.poll() is None:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=60)
        return
    output, _ = second.communicate()
    assert second.returncode == 2, output
    assert f"already uses the data dir {data_dir}" in output


def _exiting(pid: int) -> bool:
    """Whether the process is in the kernel's exit, or past it: its files (and its flock) are let go there,
    a moment before its pidfd says it has ended. PF_EXITING is set in /proc/PID/stat's flags from the start."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    state, *_, flags = stat.rpartition(")")[2].split()[:7]
    return state in "ZX" or bool(int(flags) & PF_EXITING)


def _ended(pidfd: int, wait: float) -> bool:
    """Whether the process has ended, waiting up to `wait` seconds for it (a pidfd is readable once it has)."""
    return bool(select.select([pidfd], [], [], wait)[0])

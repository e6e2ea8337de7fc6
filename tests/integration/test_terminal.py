"""`tao <task> run sh` with a real terminal: `tao` under a pseudo-terminal (pexpect), a real daemon and engine.

The busybox shell of the test image prompts with "/workspace # ". What a test waits for is
always something the shell or the engine shows (a prompt, a process in the container): never
a pause long enough on this machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from tao_server.testing.daemon import Daemon, executable
from tests.conftest import self_signed_certificate
from tests.integration.conftest import free_port, make_daemon, tao_as, until

PROMPT = "/workspace # "
TIMEOUT = 60


@pytest.fixture
def spawn(daemon: Daemon) -> Iterator[Any]:
    """Start `tao ARGS` on a pseudo-terminal of 30 rows and 100 columns; each is killed at the end if still there."""
    children: list[pexpect.spawn] = []

    def start(*args: str, command: str | None = None) -> pexpect.spawn:
        child = pexpect.spawn(command or executable("tao"), list(args), env=daemon.env(), dimensions=(30, 100), timeout=TIMEOUT)
        children.append(child)
        return child

    yield start
    for child in children:
        child.close(force=True)


def job_of(daemon: Daemon) -> dict[str, Any]:
    """The one running job (the tests below run one at a time on their daemon)."""
    found: list[dict[str, Any]] = []

    def running() -> bool:
        found[:] = [job for job in daemon.request("GET", "/v1/jobs?status=running")["jobs"]]
        return bool(found)

    until(running, "a job runs", timeout=TIMEOUT)
    return found[0]


def processes_in(docker_client: Any, container_id: str) -> list[str]:
    return [" ".join(process[-1:]) for process in docker_client.api.top(container_id)["Processes"]]


def test_a_shell_gets_a_terminal_of_our_size_that_follows_resizes(spawn: Any) -> None:
    child = spawn("detectnet_v2", "run", "sh")
    child.expect_exact(PROMPT)
    child.sendline("stty size; tty")
    child.expect_exact("30 100")
    child.expect_exact("/dev/pts/")  # a real terminal inside, not a pipe
    child.setwinsize(41, 123)
    child.sendline("stty size")
    child.expect_exact("41 123")
    child.sendline("exit 7")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 7


def test_ctrl_c_and_ctrl_z_reach_the_shells_command_and_the_session_goes_on(spawn: Any, daemon: Daemon, docker_client: Any) -> None:
    child = spawn("detectnet_v2", "run", "sh")
    child.expect_exact(PROMPT)
    child.sendline("sleep 600")
    job = job_of(daemon)
    until(lambda: any("sleep 600" in p for p in processes_in(docker_client, job["container_id"])), "the sleep runs")
    child.sendcontrol("c")
    child.expect_exact(PROMPT)
    child.sendline("echo status=$?")
    child.expect_exact("status=130")  # the shell saw its command end by SIGINT, and goes on
    child.sendline("sleep 700")
    until(lambda: any("sleep 700" in p for p in processes_in(docker_client, job["container_id"])), "the second sleep runs")
    child.sendcontrol("z")  # SIGTSTP, from the task's own terminal: the shell's job control takes over
    child.expect("Stopped.*sleep 700")
    child.sendline("kill -9 %1; echo killed")
    child.expect_exact("killed")
    assert daemon.job(job["id"])["status"] == "running"
    child.sendline("exit")
    if child.expect([pexpect.EOF, "You have stopped jobs"]) == 1:  # ash may not have reaped the killed job yet
        child.sendline("exit")  # as in any shell, a second exit leaves anyway
        child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_the_terminal_is_restored_when_tao_is_killed(spawn: Any, daemon: Daemon) -> None:
    tao = executable("tao")
    script = f"stty -g; echo BEGIN; {tao} detectnet_v2 run sh; echo END=$?; stty -g"
    child = spawn("-c", script, command="/bin/sh")
    child.expect(r"([0-9a-f:]+)\r\nBEGIN")
    before = child.match.group(1)
    child.expect_exact(PROMPT)
    tao_pid = int(subprocess.run(["pgrep", "-P", str(child.pid)], capture_output=True, text=True, check=True).stdout.split()[0])
    os.kill(tao_pid, signal.SIGTERM)
    child.expect(r"detached from job (\S+);")
    job_id = child.match.group(1).decode()
    child.expect(r"END=143\r\n([0-9a-f:]+)\r\n")
    assert child.match.group(1) == before  # raw mode undone: the same modes as before tao
    child.expect(pexpect.EOF)
    # On a terminal a signal detaches, as for `docker run -t`: the shell goes on until stopped.
    assert daemon.job(job_id)["status"] == "running"
    assert daemon.tao("stop", job_id).returncode == 0


def test_detach_keys_leave_the_job_running_and_attach_returns_to_it(spawn: Any, daemon: Daemon) -> None:
    child = spawn("detectnet_v2", "run", "sh")
    child.expect_exact(PROMPT)
    child.sendline("MARK=kept-$((6*7))")
    child.expect_exact(PROMPT)
    child.send("\x10\x11")  # Ctrl-P Ctrl-Q
    child.expect(r"detached from job (\S+);")
    job_id = child.match.group(1).decode()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert daemon.job(job_id)["status"] == "running"

    again = spawn("attach", job_id)
    again.expect_exact("attached")
    again.sendline("echo $MARK")
    again.expect_exact("kept-42")  # the same shell, its variables intact
    again.sendline("exit 3")
    again.expect(pexpect.EOF)
    again.close()
    assert again.exitstatus == 3
    assert daemon.job(job_id)["status"] == "failed"


def test_without_a_terminal_input_is_copied_to_its_end_and_the_task_sees_eof(daemon: Daemon) -> None:
    # Not a terminal: -i alone, as `docker run -i`, with the bytes exactly as given.
    data = bytes(range(256)) * 4096 + b"no newline at the end"
    result = subprocess.run(
        [executable("tao"), "-i", "detectnet_v2", "run", "cat"], input=data, env=daemon.env(), capture_output=True, timeout=TIMEOUT
    )
    assert (result.returncode, result.stdout) == (0, data), result.stderr


def test_another_user_cannot_attach(shared_daemon: Daemon, unprivileged_user: tuple[str, int, int]) -> None:
    started = shared_daemon.tao("-dit", "detectnet_v2", "run", "sh")
    job_id = started.stdout.decode().strip()
    shared_daemon.wait_for_status(job_id, ("running",))
    refused = tao_as(shared_daemon, unprivileged_user, "attach", job_id)
    assert refused.returncode == 125
    assert f"no job {job_id!r}" in refused.stderr.decode()
    assert shared_daemon.job(job_id)["status"] == "running"
    assert shared_daemon.tao("stop", job_id).returncode == 0


def test_an_admin_may_attach_to_a_users_terminal(shared_daemon: Daemon, unprivileged_user: tuple[str, int, int]) -> None:
    started = tao_as(shared_daemon, unprivileged_user, "-dit", "detectnet_v2", "run", "sh")
    assert started.returncode == 0, started.stderr
    job_id = started.stdout.decode().strip()
    shared_daemon.wait_for_status(job_id, ("running",))
    child = pexpect.spawn(executable("tao"), ["attach", job_id], env=shared_daemon.env(), dimensions=(30, 100), timeout=TIMEOUT)
    child.expect_exact("attached")
    child.sendline("id -u")
    child.expect_exact(f"\r\n{unprivileged_user[1]}\r\n")  # the user's shell, as the user
    child.sendline("exit 4")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 4


def test_a_tty_with_input_from_a_pipe_is_refused_before_anything_runs(daemon: Daemon) -> None:
    result = subprocess.run(
        [executable("tao"), "-it", "detectnet_v2", "run", "cat"], input=b"x\n", env=daemon.env(), capture_output=True, timeout=TIMEOUT
    )
    assert result.returncode == 125
    assert b"-t with -i needs a terminal on stdin" in result.stderr


def test_tao_task_alone_on_a_terminal_opens_the_images_shell(spawn: Any, tmp_path: Path) -> None:
    child = spawn("detectnet_v2")
    child.expect_exact(PROMPT)
    child.sendline("echo $0")
    child.expect_exact("/bin/sh")
    child.sendline("exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_a_terminal_over_tls_with_a_token(tmp_path: Path, manifest_file: Path) -> None:
    # TLS records can hold bytes select() does not see: the session must still show every one.
    cert, key = self_signed_certificate(tmp_path)
    port = free_port()
    daemon = make_daemon(tmp_path / "daemon", manifest_file, "--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key)).start()
    try:
        token = daemon.token("--user", "root", "--uid", "0", "--gid", "0", "--admin")
        env = daemon.env(TAO_HOST=f"https://127.0.0.1:{port}", TAO_TOKEN=token, TAO_CA_CERT=str(cert))
        child = pexpect.spawn(executable("tao"), ["detectnet_v2", "run", "sh"], env=env, dimensions=(30, 100), timeout=TIMEOUT)
        child.expect_exact(PROMPT)
        child.sendline("seq 1 30000; stty size")
        child.expect_exact("29999\r\n30000\r\n30 100")
        child.sendline("exit 5")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 5
    finally:
        daemon.stop()
        daemon.remove_containers()

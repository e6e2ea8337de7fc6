"""A real `tao-server` process on a Unix socket in a directory of its own, and the means to drive it.

The one harness the integration tests and the benchmarks share: nothing is mocked, the daemon
is the installed `tao-server`, and `tao` is the installed CLI run with no TTY and no stdin.
`Daemon` starts `tao-server` itself; `StartedByTao` has a user's first `tao` command start it.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

LABEL_DAEMON = "org.tao-launcher.daemon"
LABEL_JOB = "org.tao-launcher.job"


def executable(name: str) -> str:
    """An installed command: beside this interpreter (the project's venv), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed; run scripts/prepare first")
    return found


class Daemon:
    """A `tao-server` under `root`: its socket in root/run, data in root/data, and root/home as HOME for `tao`."""

    def __init__(self, root: Path, manifest: Path, *extra_args: str, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.socket = root / "run" / "tao.sock"
        self.data_dir = root / "data"
        self.home = root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.manifest = manifest
        self.extra_args = extra_args
        self.extra_env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"unix://{self.socket}"

    # -- the process ----------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> Daemon:
        """Start the daemon and return once it answers /healthz."""
        process = self.launch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"tao-server exited {process.returncode}:\n{self.server_log()[-3000:]}")
            try:
                with self.http() as client:
                    if client.get("/healthz").status_code == 200:
                        return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"tao-server did not answer within {timeout:.0f} s:\n{self.server_log()[-3000:]}")

    def launch(self) -> subprocess.Popen[bytes]:
        """Start the daemon's process and return at once, for whoever times its start themselves."""
        command = [
            executable("tao-server"), "--data-dir", str(self.data_dir), "--socket", str(self.socket),
            "--manifest", str(self.manifest), "--stop-timeout", "5", "--gpus", "none", *self.extra_args,
        ]  # fmt: skip
        with open(self.root / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                command, env={**os.environ, **self.extra_env}, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        return self.process

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def discard(self) -> None:
        """Stop the daemon, remove its containers and its directory."""
        self.stop()
        self.remove_containers()
        shutil.rmtree(self.root, ignore_errors=True)

    def server_log(self) -> str:
        return (self.root / "server.log").read_text(errors="replace")

    def daemon_id(self) -> str | None:
        path = self.data_dir / "daemon-id"
        return path.read_text().strip() if path.exists() else None

    def containers(self) -> list[str]:
        """Ids of this daemon's containers, running or not (from the engine, through the docker CLI)."""
        daemon_id = self.daemon_id()
        if daemon_id is None:
            return []
        listed = subprocess.run(
            ["docker", "ps", "-aq", "--no-trunc", "--filter", f"label={LABEL_DAEMON}={daemon_id}"], capture_output=True, text=True
        )
        return listed.stdout.split()

    def remove_containers(self) -> None:
        # A removal already under way (the daemon finishing a job) is not an error: -f, and the rest ignored.
        if containers := self.containers():
            subprocess.run(["docker", "rm", "-f", *containers], capture_output=True)

    def token(self, *args: str) -> str:
        """A bearer token made with `tao-server token create ARGS` against this daemon's data dir."""
        made = subprocess.run(
            [executable("tao-server"), "token", "create", "--data-dir", str(self.data_dir), *args],
            capture_output=True,
            timeout=60,
            check=True,
        )
        return made.stdout.decode().strip()

    # -- HTTP -----------------------------------------------------------------------------------

    def http(self) -> httpx.Client:
        return httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket)), base_url="http://tao", timeout=30)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One call as the daemon's user; the JSON answer, or RuntimeError for an error status."""
        with self.http() as client:
            response = client.request(method, path, json=body)
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

    def send_raw(self, head: bytes, body: Iterable[bytes]) -> bytes:
        """Send a request head and then body pieces until the daemon answers and closes; its raw answer.

        For requests no HTTP client would send: a body larger than any limit, declared or chunked.
        """
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(60)
            sock.connect(str(self.socket))
            sock.sendall(head)
            for piece in body:
                try:
                    sock.sendall(piece)
                except (BrokenPipeError, ConnectionResetError):
                    break  # it answered and closed: it read no more than it had to
            answer = b""
            try:
                while data := sock.recv(65536):
                    answer += data
            except ConnectionResetError:
                pass  # closed with our unread body still queued: what it answered before is here
        return answer

    def job(self, job_id: str) -> dict[str, Any]:
        with self.http() as client:
            job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        return job

    def wait_for_status(self, job_id: str, statuses: tuple[str, ...], timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        job = self.job(job_id)
        while job["status"] not in statuses:
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} stayed {job['status']}, never reached {statuses}")
            time.sleep(0.05)
            job = self.job(job_id)
        return job

    def wait_for_output(self, job_id: str, text: bytes, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in (self.data_dir / "logs" / f"{job_id}.log").read_bytes():
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} never printed {text!r}")
            time.sleep(0.05)

    # -- the `tao` CLI --------------------------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        """An environment for `tao` against this daemon: its address, no autostart, root/home as HOME."""
        env = {key: value for key, value in os.environ.items() if key not in ("LAUNCHER_MOUNTS", "TAO_HOST")}
        env.update(HOME=str(self.home), TAO_HOST=self.address, TAO_NO_AUTOSTART="1")
        env.update(extra)
        return env

    def tao(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run the real `tao` CLI against this daemon with no TTY and no stdin."""
        return subprocess.run(
            [executable("tao"), *args], env=env or self.env(), stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout
        )

    def popen_tao(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [executable("tao"), *args], env=env or self.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )


class StartedByTao(Daemon):
    """The daemon a user's first `tao` command starts by itself: no TAO_HOST, HOME in root/home,
    XDG_RUNTIME_DIR root/xdg (its socket in root/xdg/tao), TAO_DATA_DIR root/data, the manifest in
    TAO_MANIFEST, `env` as further TAO_* variables, and no --port. `tao daemon stop` stops it.

    `env()` names its socket explicitly (and forbids a start), as the other tests' commands do;
    `user_env()` is the user's own environment, where `tao` may start it.
    """

    def __init__(self, root: Path, manifest: Path, env: dict[str, str] | None = None) -> None:
        super().__init__(root, manifest, env=env)
        self.runtime = root / "xdg"
        self.socket = self.runtime / "tao" / "tao.sock"
        self.notice = ""  # what the starting `tao` said on stderr

    def user_env(self, **extra: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("TAO_HOST", "TAO_NO_AUTOSTART", "TAO_AUTOSTART", "LAUNCHER_MOUNTS")
        }
        env.update(HOME=str(self.home), XDG_RUNTIME_DIR=str(self.runtime), TAO_DATA_DIR=str(self.data_dir), TAO_MANIFEST=str(self.manifest))
        env.update({"TAO_STOP_TIMEOUT": "5", "TAO_GPUS": "none", **self.extra_env})  # `env` may give its own
        env.update(extra)
        return env

    def start(self, timeout: float = 60) -> StartedByTao:
        """`tao info` with nothing answering: `tao` starts the daemon, says so, and returns once it answers."""
        self.runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        ran = subprocess.run(
            [executable("tao"), "info"], env=self.user_env(), stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout
        )
        if ran.returncode != 0:
            raise RuntimeError(f"tao did not start a daemon ({ran.returncode}):\n{ran.stderr.decode(errors='replace')}")
        self.notice = ran.stderr.decode(errors="replace")
        return self

    def launch(self) -> subprocess.Popen[bytes]:
        raise NotImplementedError("`tao` starts this daemon: use start()")

    def pid(self) -> int | None:
        lock = self.data_dir / "daemon.lock"
        text = lock.read_text().strip() if lock.exists() else ""
        return int(text) if text else None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """`tao daemon stop`, or where it refuses (a test opened the socket's directory to others) SIGTERM as an
        admin would; another signal (SIGKILL) is sent as it is. Returns once the process has ended."""
        if sig == signal.SIGTERM and self.socket.exists():
            stopped = subprocess.run([executable("tao"), "daemon", "stop"], env=self.user_env(), capture_output=True, timeout=120)
            if stopped.returncode == 0:
                return
        if (pid := self.pid()) is not None:
            _signal_and_wait(pid, sig)

    def server_log(self) -> str:
        log = self.data_dir / "daemon.log"
        return log.read_text(errors="replace") if log.exists() else ""


def _signal_and_wait(pid: int, sig: int, timeout: float = 60) -> None:
    """Signal a process that is not this one's child, and wait (through a pidfd) until it has ended."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        os.kill(pid, sig)
        select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)

"""A real engine restart: a second dockerd of the test's own (socket, data root, exec root in a temp
dir), restarted under a running job, with and without --live-restore.

Without live-restore the engine stops the job's container as it goes down: the job ends with the
container's true exit code and all its output. With it the container runs on: the job is followed
again from the byte its log has. In neither case is a line lost or written twice.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tao_server.testing.daemon import Daemon
from tests.integration.conftest import consecutive_ticks, job_id_of, job_log, running_job, until

pytestmark = pytest.mark.integration


class OwnEngine:
    """A dockerd on its own socket, data root and exec root, that the test starts, stops and restarts."""

    def __init__(self, root: Path, image: str) -> None:
        self.root = root
        self.socket = root / "docker.sock"
        self.process: subprocess.Popen[bytes] | None = None
        self.start(live_restore=False)
        saved = subprocess.run(["docker", "save", image], check=True, capture_output=True).stdout
        subprocess.run(["docker", "-H", self.address, "load", "-q"], input=saved, check=True, capture_output=True)

    @property
    def address(self) -> str:
        return f"unix://{self.socket}"

    def start(self, live_restore: bool) -> None:
        command = [
            "dockerd", "--host", self.address, "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
            "--pidfile", str(self.root / "docker.pid"), "--bridge=none", "--iptables=false", "--ip-masq=false",
            *(["--live-restore"] if live_restore else []),
        ]  # fmt: skip
        with open(self.root / "dockerd.log", "ab") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while subprocess.run(["docker", "-H", self.address, "info"], capture_output=True).returncode != 0:
            assert self.process.poll() is None, (self.root / "dockerd.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the test's own dockerd did not answer within 60 s"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=120)
        self.process = None

    def unmount(self) -> None:
        """dockerd leaves its data root bind-mounted on itself: take that (and anything under it) away."""
        mounted = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        for point in sorted((p for p in mounted if p.startswith(str(self.root))), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)

    def remove_all(self) -> None:
        listed = subprocess.run(["docker", "-H", self.address, "ps", "-aq"], capture_output=True, text=True).stdout.split()
        if listed:
            subprocess.run(["docker", "-H", self.address, "rm", "-f", *listed], capture_output=True)


@pytest.fixture
def own_engine(toolkit_image: str) -> Iterator[OwnEngine]:
    engine = OwnEngine(Path(tempfile.mkdtemp(prefix="tao-dockerd-")), toolkit_image)
    yield engine
    if engine.process is None:
        engine.start(live_restore=False)
    engine.remove_all()
    engine.stop()
    engine.unmount()
    shutil.rmtree(engine.root, ignore_errors=True)


def test_an_engine_restart_ends_the_job_with_its_containers_true_exit_code(new_daemon, own_engine: OwnEngine) -> None:  # type: ignore[no-untyped-def]
    daemon: Daemon = new_daemon(env={"TAO_DOCKER_HOST": own_engine.address}).start()
    attached = daemon.popen_tao("detectnet_v2", "ticks", "100000", "0.01")
    job_id = running_job(daemon)
    until(lambda: b"tick 5\n" in job_log(daemon, job_id), "the job ticks")
    own_engine.stop()  # without live-restore, the engine stops the container (SIGTERM) as it goes
    until(lambda: daemon.job(job_id).get("condition") is not None, "the outage shows on the job")
    assert daemon.job(job_id)["status"] == "running"
    own_engine.start(live_restore=False)
    final = daemon.wait_for_status(job_id, ("failed", "succeeded", "error", "cancelled"))
    assert (final["status"], final["exit_code"]) == ("failed", 143)  # what the container really did
    out, err = attached.communicate(timeout=120)
    assert attached.returncode == 143, err
    consecutive_ticks(out)
    assert out == job_log(daemon, job_id)


def test_with_live_restore_the_job_runs_on_across_the_engine_restart(new_daemon, own_engine: OwnEngine) -> None:  # type: ignore[no-untyped-def]
    own_engine.stop()
    own_engine.start(live_restore=True)
    daemon: Daemon = new_daemon(env={"TAO_DOCKER_HOST": own_engine.address}).start()
    job_id = job_id_of(daemon.tao("-d", "detectnet_v2", "ticks", "100000", "0.01"))
    until(lambda: b"tick 5\n" in job_log(daemon, job_id), "the job ticks")
    own_engine.stop()  # the container runs on without its engine
    until(lambda: daemon.job(job_id).get("condition") is not None, "the outage shows on the job")
    own_engine.start(live_restore=True)
    until(lambda: daemon.job(job_id).get("condition") is None, "the daemon sees the engine again")
    logged = len(job_log(daemon, job_id))
    until(lambda: len(job_log(daemon, job_id)) > logged + 50, "the output is copied again")
    assert daemon.tao("stop", job_id).returncode == 0
    final = daemon.job(job_id)
    assert (final["status"], final["exit_code"]) == ("cancelled", 143)
    consecutive_ticks(job_log(daemon, job_id))

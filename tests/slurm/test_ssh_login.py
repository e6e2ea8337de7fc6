"""--slurm-login: the daemon runs Slurm's commands on a login node over one kept-open SSH connection.

The login node is this machine's own sshd on 127.0.0.1, started by the test with a host key and a
client key it makes; ssh's ControlMaster keeps one connection for every command.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tao_server.testing.daemon import Daemon
from tao_server.testing.slurm import SlurmCluster
from tests.integration.conftest import manifest_v2

HOSTILE_ARGV = ["a b", "", "$(id)", "'\"\\", "new\nline", "ünï", ";", "-x"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LoginNode:
    """An sshd on 127.0.0.1 that lets root in with one key, passing SLURM_CONF on to its sessions."""

    def __init__(self, root: Path, slurm_conf: str) -> None:
        self.root = root
        self.port = _free_port()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / "host_key")], check=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / "client_key")], check=True)
        shutil.copy(root / "client_key.pub", root / "authorized_keys")
        host_public = (root / "host_key.pub").read_text().split()
        (root / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_public[0]} {host_public[1]}\n")
        (root / "sshd_config").write_text(
            f"ListenAddress 127.0.0.1\nPort {self.port}\nHostKey {root}/host_key\nAuthorizedKeysFile {root}/authorized_keys\n"
            f"PidFile {root}/sshd.pid\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nUsePAM no\nStrictModes no\n"
            "AcceptEnv SLURM_CONF\nLogLevel VERBOSE\n"
        )
        self.config = root / "ssh_config"
        self.config.write_text(
            f"Host tao-login\n  HostName 127.0.0.1\n  Port {self.port}\n  User root\n  IdentityFile {root}/client_key\n"
            f"  IdentitiesOnly yes\n  UserKnownHostsFile {root}/known_hosts\n  StrictHostKeyChecking yes\n  SetEnv SLURM_CONF={slurm_conf}\n"
        )
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        self.log = root / "sshd.log"
        self.process = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(root / "sshd_config")], stderr=open(self.log, "wb"))
        deadline = time.monotonic() + 30
        while subprocess.run(["ssh", "-F", str(self.config), "tao-login", "true"], capture_output=True).returncode != 0:
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    def logins(self) -> int:
        return self.log.read_text().count("Accepted publickey")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture
def login_node(slurm: SlurmCluster) -> Iterator[LoginNode]:
    root = Path(tempfile.mkdtemp(prefix="tao-sshd-"))
    node = LoginNode(root, str(slurm.conf))
    yield node
    node.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_jobs_go_through_one_ssh_connection_to_the_login_node(login_node: LoginNode, slurm: SlurmCluster, toolkit_image: str) -> None:
    root = Path(tempfile.mkdtemp(prefix="tao-via-ssh-"))
    root.chmod(0o755)
    try:
        (root / "shared").mkdir(mode=0o755)
        manifest = root / "manifest.json"
        manifest.write_text(json.dumps(manifest_v2(toolkit_image)))
        args = ("--backend", "slurm", "--slurm-shared-dir", str(root / "shared"), "--slurm-partition", slurm.partition)
        login = ("--slurm-login", "tao-login", "--slurm-ssh-config", str(login_node.config))
        before = login_node.logins()  # the fixture's own check that sshd answers
        # No SLURM_CONF here: only the login node knows the cluster.
        daemon = Daemon(root / "daemon", manifest, *args, *login).start()
        try:
            ran = daemon.tao("detectnet_v2", "argv", *HOSTILE_ARGV)
            assert ran.returncode == 0, ran.stderr
            assert ran.stdout == b"".join(arg.encode() + b"\0" for arg in HOSTILE_ARGV)
            assert daemon.tao("detectnet_v2", "exit", "3").returncode == 3
            assert "jobs submitted as the login account tao-login (every job)" in daemon.tao("info").stdout.decode()
            assert login_node.logins() == before + 1  # every command went over the daemon's one connection
        finally:
            daemon.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)

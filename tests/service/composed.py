"""The daemon as docker-compose.yml runs it: its image, its container, its volume, driven from the host.

`ComposedDaemon` is a `Daemon` (the same `tao`, HTTP and job helpers) whose process is the
`tao-server` container of a compose project of its own: the socket in root/run on the host, the
manifest in root/config (the config dir), root/tree the host tree it sees (TAO_HOST_PATHS), and
root/home the HOME of `tao`. Everything lies under one directory every local user may enter, so
tests can run `tao` as other accounts. `discard()` removes the project, its volume and its jobs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from tao_server.testing.daemon import Daemon

ROOT = Path(__file__).resolve().parents[2]  # the checkout: its compose file and scripts
COMPOSE_FILE = ROOT / "docker-compose.yml"


def compose_command() -> list[str]:
    """Debian's docker-compose 1.29 when installed, else Docker Compose v2 (`docker compose`)."""
    if found := shutil.which("docker-compose"):
        return [found]
    return ["docker", "compose"]


def build_image(tag: str) -> float:
    """Build the daemon's image from this checkout on a locally made Debian base; seconds it took."""
    started = time.monotonic()
    base = os.environ.get("TAO_BASE_IMAGE", "tao-base:bookworm")
    for command, env in (
        ([str(ROOT / "scripts" / "build-base-image"), base], {}),
        ([str(ROOT / "scripts" / "build-image"), tag], {"BASE_IMAGE": base}),
    ):
        built = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)
        if built.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}")
    return time.monotonic() - started


class ComposedDaemon(Daemon):
    def __init__(self, root: Path, image: str, project: str, manifest: dict[str, object], env: dict[str, str] | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)  # other accounts' `tao` reach the socket and their files through here
        for name in ("run", "config", "tree"):
            (root / name).mkdir(exist_ok=True)
            (root / name).chmod(0o755)
        (root / "config" / "manifest.json").write_text(json.dumps(manifest))
        super().__init__(root, root / "config" / "manifest.json", env=env)
        self.home.chmod(0o755)
        self.tree = root / "tree"
        self.image = image
        self.project = project

    # -- the compose project --------------------------------------------------------------------

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        settings = {
            "TAO_IMAGE": self.image,
            "TAO_SOCKET_DIR": str(self.socket.parent),
            "TAO_CONFIG_DIR": str(self.root / "config"),
            "TAO_HOST_TREE": str(self.tree),
            "TAO_HOST_PATHS": str(self.tree),
            "TAO_MANIFEST": "/etc/tao-server/manifest.json",
            "TAO_SOCKET_MODE": "0666",
            "TAO_SOCKET_GROUP": "",
            "TAO_GPUS": "none",
            "TAO_STOP_TIMEOUT": "5",
            **self.extra_env,
        }
        command = [*compose_command(), "-p", self.project, "-f", str(COMPOSE_FILE), *args]
        return subprocess.run(command, env={**os.environ, **settings}, capture_output=True, text=True, timeout=300, check=check)

    def container(self) -> str:
        return self.compose("ps", "-q", "tao-server").stdout.strip()

    def start(self, timeout: float = 120) -> ComposedDaemon:
        """`up -d`, then wait until the engine calls the container healthy (its HEALTHCHECK)."""
        self.compose("up", "-d")
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 120) -> float:
        """Seconds until the container's health check passes (and the socket answers this harness too)."""
        started = time.monotonic()
        container = self.container()
        while self._health(container) != "healthy":
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the daemon's container never became healthy:\n{self.server_log()[-3000:]}")
            time.sleep(0.1)
        with self.http() as client:
            client.get("/healthz").raise_for_status()
        return time.monotonic() - started

    @staticmethod
    def _health(container: str) -> str:
        inspected = subprocess.run(["docker", "inspect", "--format", "{{.State.Health.Status}}", container], capture_output=True, text=True)
        return inspected.stdout.strip()

    def fill_data_volume(self, data_dir: Path) -> None:
        """Before the first start: the data volume gets `data_dir`'s files (an old release's, say)."""
        self.compose("up", "--no-start")
        subprocess.run(["docker", "cp", f"{data_dir}/.", f"{self.container()}:/var/lib/tao/"], check=True, capture_output=True)

    def restart(self) -> None:
        self.compose("restart", "tao-server")
        self.wait_healthy()

    def stop(self, sig: int = 0) -> None:
        self.compose("stop", check=False)

    def down(self) -> None:
        """`down`: container gone, the named data volume kept."""
        self.compose("down")

    def discard(self) -> None:
        self.remove_containers()
        self.compose("down", "--volumes", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def server_log(self) -> str:
        return self.compose("logs", "--no-color", "tao-server", check=False).stdout

    def in_container(self, *command: str) -> subprocess.CompletedProcess[str]:
        return self.compose("exec", "-T", "tao-server", *command, check=False)

    def daemon_id(self) -> str | None:
        read = self.in_container("cat", "/var/lib/tao/daemon-id")
        return read.stdout.strip() or None if read.returncode == 0 else None

    def token(self, *args: str) -> str:
        made = self.in_container("tao-server", "token", "create", *args)
        if made.returncode != 0:
            raise RuntimeError(f"tao-server token create failed: {made.stderr}")
        return made.stdout.strip()

    def wait_for_output(self, job_id: str, text: bytes, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with self.http() as client:
            while text not in client.get(f"/v1/jobs/{job_id}/logs").content:
                if time.monotonic() > deadline:
                    raise AssertionError(f"job {job_id} never printed {text!r}")
                time.sleep(0.05)

"""A real Docker registry (Debian's docker-registry) on 127.0.0.1 with htpasswd logins, for pull tests.

The engine treats registries on 127.0.0.0/8 as insecure, so plain HTTP with basic auth works
without certificates. `HeldBlobs` sits in front of one and holds a blob's download until the
test lets it go, so a test can see a pull in progress however fast the machine is. `PacedRelay`
sits in front of one and sends downloads at a set rate, so that a benchmark's small images take
as long to pull as large ones over a real network would.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import bcrypt
import httpx

from tao_server.testing.relay import relay

USERNAME = "tao"
PASSWORD = "s3cret-pass"


class Registry:
    def __init__(self, root: Path, port: int, auth: bool = True) -> None:
        """`auth`: logins required (htpasswd, USERNAME and PASSWORD); without, anyone may pull and push."""
        self.root = root
        self.port = port
        self.auth = auth
        self.host = f"127.0.0.1:{port}"
        self.log_path = root / "registry.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Registry:
        binary = shutil.which("docker-registry")
        assert binary, "docker-registry is not installed; scripts/prepare installs it"
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()
        (self.root / "htpasswd").write_text(f"{USERNAME}:{hashed}\n")
        logins = f"auth:\n  htpasswd:\n    realm: tao-test\n    path: {self.root / 'htpasswd'}\n" if self.auth else ""
        (self.root / "config.yml").write_text(
            "version: 0.1\n"
            "log:\n  level: info\n  accesslog:\n    disabled: false\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n" + logins
        )
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([binary, "serve", str(self.root / "config.yml")], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://{self.host}/v2/").status_code == (401 if self.auth else 200):
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"docker-registry did not start: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def push(self, local_image: str, name: str) -> tuple[str, str]:
        """Push `local_image` as NAME; returns (reference, digest). Logs the engine out again afterwards."""
        reference = f"{self.host}/{name}"
        if self.auth:
            _docker("login", self.host, "-u", USERNAME, "--password-stdin", input=PASSWORD)
        try:
            _docker("tag", local_image, reference)
            _docker("push", reference)
            digest = _docker("inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", reference).split()
        finally:
            if self.auth:
                _docker("logout", self.host)
        pinned = next(d for d in digest if d.startswith(reference.rsplit(":", 1)[0] + "@"))
        return reference, pinned.split("@", 1)[1]

    def blob_downloads(self, digest: str) -> int:
        """How many times the registry served blob `digest` in full."""
        return sum(
            1
            for line in self.log_path.read_text(errors="replace").splitlines()
            if "GET /v2/" in line and f"/blobs/{digest}" in line and '" 200 ' in line
        )


def _docker(*args: str, input: str | None = None) -> str:
    result = subprocess.run(["docker", *args], input=input, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {result.stderr}")
    return result.stdout


def remove_local(*references: str) -> None:
    subprocess.run(["docker", "rmi", "-f", *references], capture_output=True)


def build_variant(base: str, tag: str, root: Path, size: int = 8 * 1024 * 1024) -> str:
    """An image with one layer of its own (random bytes), so a pull really downloads something."""
    context = root / f"context-{tag.replace('/', '_').replace(':', '_')}"
    context.mkdir(parents=True, exist_ok=True)
    (context / "blob").write_bytes(os.urandom(size))
    (context / "Dockerfile").write_text(f"FROM {base}\nCOPY blob /opt/blob\n")
    _docker("build", "-q", "-t", tag, str(context))
    return tag


def layer_digests(registry: Registry, repository: str, tag: str) -> list[str]:
    """The blob digests of an image's layers, as the registry stores them."""
    response = httpx.get(
        f"http://{registry.host}/v2/{repository}/manifests/{tag}",
        auth=(USERNAME, PASSWORD),
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    response.raise_for_status()
    return [layer["digest"] for layer in response.json()["layers"]]


class _Relay:
    """A TCP relay on 127.0.0.1 in front of `upstream` (HOST:PORT): each accepted connection gets one upstream
    connection, and `_carry(client, upstream)` starts the threads that copy between them."""

    def __init__(self, upstream: str, name: str) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, name=name, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._upstream)
            except OSError:
                client.close()  # the registry is gone: this connection ends, the relay keeps accepting
                continue
            self._carry(client, upstream)

    def _carry(self, client: socket.socket, upstream: socket.socket) -> None:
        raise NotImplementedError


class HeldBlobs(_Relay):
    """A TCP relay in front of a registry that holds the answer to a download of one blob until `release()`.

    Everything else passes at once, so the engine sees the manifest and starts the pull; the
    held layer's bytes wait. A test can then watch the pull in progress, with no assumption
    about how fast the machine or the disk is, and let it finish when it has seen what it needs.
    """

    def __init__(self, upstream: str, blob_digest: str) -> None:
        self._marker = f"/blobs/{blob_digest}".encode()
        self._released = threading.Event()
        self.held = threading.Event()  # set once a download of the blob has been asked for and held
        super().__init__(upstream, "held-blobs")

    def release(self) -> None:
        self._released.set()

    def close(self) -> None:
        self._released.set()
        super().close()

    def _carry(self, client: socket.socket, upstream: socket.socket) -> None:
        asked = threading.Event()  # this connection asked for the held blob
        threading.Thread(target=self._asks, args=(client, upstream, asked), daemon=True).start()
        threading.Thread(target=self._answers, args=(upstream, client, asked), daemon=True).start()

    def _asks(self, source: socket.socket, target: socket.socket, asked: threading.Event) -> None:
        seen = b""

        def look(data: bytes) -> None:
            nonlocal seen
            seen = seen[-len(self._marker) :] + data
            if self._marker in seen and not self._released.is_set():
                asked.set()

        relay(source, target, look)

    def _answers(self, source: socket.socket, target: socket.socket, asked: threading.Event) -> None:
        def hold(_data: bytes) -> None:
            if asked.is_set():
                self.held.set()
                self._released.wait()

        relay(source, target, hold)


class PacedRelay(_Relay):
    """A TCP relay in front of a registry that sends what the registry answers at `rate` bytes a second, per connection.

    Requests pass at once. A pull of a few megabytes then takes as long as one of many gigabytes over a
    real network, and a benchmark can see what a line does while images download.
    """

    def __init__(self, upstream: str, rate: float) -> None:
        self._rate = rate
        super().__init__(upstream, "paced-relay")

    def _carry(self, client: socket.socket, upstream: socket.socket) -> None:
        threading.Thread(target=relay, args=(client, upstream), daemon=True).start()
        threading.Thread(target=relay, args=(upstream, client, _Pace(self._rate)), daemon=True).start()


class _Pace:
    """Holds each piece for as long as it takes to send at `rate` bytes a second, after the pieces before it.

    A connection kept alive between downloads earns no credit while idle: each download is paced alike.
    """

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._free_at = 0.0  # when the pieces so far have been sent, at the rate

    def __call__(self, data: bytes) -> None:
        now = time.monotonic()
        self._free_at = max(now, self._free_at) + len(data) / self._rate
        time.sleep(self._free_at - now)

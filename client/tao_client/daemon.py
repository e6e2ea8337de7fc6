"""Finding the daemon, and starting a local one when none answers on a Unix socket."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from tao_client import _paths
from tao_client._errors import DaemonUnreachable, TaoClientError

START_TIMEOUT = 30.0


@dataclass(frozen=True)
class Address:
    url: str
    socket_path: Path | None = None

    @property
    def base_url(self) -> str:
        return "http://tao" if self.socket_path is not None else self.url


def resolve(host: str | None = None) -> Address:
    """The daemon's address: `host`, else $TAO_HOST (unix:///path or http://host:port), else the local socket."""
    host = host or os.environ.get("TAO_HOST") or ""
    if not host:
        path = _paths.socket_path()
        return Address(f"unix://{path}", path)
    if host.startswith("unix://"):
        path = Path(host.removeprefix("unix://"))
        return Address(f"unix://{path}", path)
    if host.startswith("/"):
        return Address(f"unix://{host}", Path(host))
    if host.startswith(("http://", "https://")):
        return Address(host.rstrip("/"))
    raise TaoClientError(f"TAO_HOST={host!r} is not an address; use unix:///path/to/tao.sock or http://HOST:PORT")


def listening(address: Address) -> bool:
    if address.socket_path is None:
        return True
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(address.socket_path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def start_local(address: Address) -> None:
    """Start `tao-server` on the address's socket in the background, once even when many `tao` race."""
    if address.socket_path is None or os.environ.get("TAO_NO_AUTOSTART"):
        raise DaemonUnreachable(address.url, "nothing answers there")
    if find_spec("tao_server") is None:
        raise DaemonUnreachable(address.url, "nothing answers there, and this install has no daemon to start: pip install 'tao-launcher[server]', or set TAO_HOST")
    path = address.socket_path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path.parent / f".{path.name}.start-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if listening(address):
            return
        log_path = _paths.data_dir() / "daemon.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tao_server", "--socket", str(path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the daemon outlives this terminal and its Ctrl-C
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if listening(address):
                return
            if process.poll() is not None:
                raise DaemonUnreachable(address.url, f"the daemon started for it exited ({process.returncode}):\n{_tail(log_path)}")
            time.sleep(0.02)
        raise DaemonUnreachable(address.url, f"a daemon was started but did not listen within {START_TIMEOUT:.0f}s; see {log_path}")


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"

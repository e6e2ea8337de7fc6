"""The daemon `tao` starts for its user: starting it (once, however many `tao` race), stopping it,
and how its settings differ from the caller's environment.

`tao` starts `tao-server --socket PATH --started-by tao` in the background, its output appended
to `daemon.log` in the data dir, and says so once on stderr. Where it may do so is address.py's
rule. Stopping is SIGTERM to the process that listens on the socket (as the kernel names it),
then waiting until that process, its socket and its data-dir lock are gone.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import time

from tao_client._errors import DaemonUnreachable, TaoClientError
from tao_client.address import SERVICE_CHECK, Address, listening, not_own
from tao_common import paths

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    import subprocess

START_TIMEOUT = 30.0
STOP_TIMEOUT = 60.0
_UCRED = struct.Struct("3i")  # pid, uid, gid


class DaemonStartFailed(DaemonUnreachable):
    """The daemon `tao` started exited, or never listened; the message carries its own words and names its log."""

    def __init__(self, address: str, reason: str) -> None:
        TaoClientError.__init__(self, f"tao-server could not start at {address}: {reason}")
        self.address = address


def log_path() -> str:
    """Where the daemons `tao` starts write their output: daemon.log in the data dir."""
    return os.path.join(paths.data_dir(), "daemon.log")


def start(address: Address) -> int | None:
    """Start `tao-server` at the address's socket in the background; its pid, or None when a daemon
    answered first (another `tao` started it meanwhile). Raises when it may not be started there or failed to."""
    import fcntl
    import subprocess
    from importlib.util import find_spec

    path = address.socket_path
    if path is None or (refusal := not_own(address)) is not None:
        raise DaemonUnreachable(address.url, f"tao starts no daemon there: {refusal}; {SERVICE_CHECK}")
    if find_spec("tao_server") is None:
        raise DaemonUnreachable(
            address.url,
            "nothing answers there, and this install has no daemon to start: pip install 'tao-launcher[server]', or set TAO_HOST",
        )
    run_dir = os.path.dirname(path)
    try:
        os.makedirs(run_dir, mode=0o700, exist_ok=True)
        lock = open(os.path.join(run_dir, f".{os.path.basename(path)}.start-lock"), "w")
    except OSError as exc:
        raise DaemonUnreachable(address.url, f"nothing answers there, and no daemon can be started there: {exc.strerror}") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if listening(address):
            return None
        log = log_path()
        # Private from the start, as the daemon makes everything in its data dir: the database
        # and this log can hold job arguments, and those can hold keys.
        os.makedirs(os.path.dirname(log), mode=0o700, exist_ok=True)
        with open(os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab") as output:
            offset = output.tell()
            process = subprocess.Popen(
                [sys.executable, "-m", "tao_server", "--socket", path, "--started-by", "tao"],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the daemon outlives this terminal and its Ctrl-C
            )
        _wait_until_listening(address, process, log, offset)
        return process.pid


def _wait_until_listening(address: Address, process: subprocess.Popen[bytes], log: str, offset: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if listening(address):
            return
        if (code := process.poll()) is not None:
            said = _written_since(log, offset) or "(it wrote nothing)"
            raise DaemonStartFailed(address.url, f"it exited ({code}), saying:\n{said}\n(its log: {log})")
        time.sleep(0.02)
    raise DaemonStartFailed(address.url, f"it was started but did not listen within {START_TIMEOUT:.0f} s; its log: {log}")


def autostart(address: Address) -> None:
    """Start a daemon where none answers, for a client's request, and say so once on stderr."""
    pid = start(address)
    if pid is not None:
        print(f"tao: started tao-server (pid {pid}) for you; log: {log_path()}; stop it with: tao daemon stop", file=sys.stderr, flush=True)


def _written_since(path: str, offset: int, lines: int = 12) -> str:
    """The last `lines` lines the daemon wrote to its log in this run, each indented."""
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            text = file.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(f"  {line}" for line in text.splitlines()[-lines:])


def listener_process(address: Address) -> tuple[int, int] | None:
    """(pid, uid) of the process listening on the address's Unix socket, as the kernel names it; None when nothing listens.

    The pid is as this process sees it: 0 when the daemon runs in another pid namespace (a container).
    """
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(address.socket_path or "")
        pid, uid, _gid = _UCRED.unpack(probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    except OSError:
        return None
    finally:
        probe.close()
    return pid, uid


def stop(address: Address, data_dir: str | None, timeout: float = STOP_TIMEOUT) -> int | None:
    """SIGTERM the daemon `tao` may stop at the address, and wait until its process is gone, its socket
    removed and its data dir's lock released. Its pid; None when no daemon listens there."""
    import signal

    if (refusal := not_own(address)) is not None:
        raise TaoClientError(f"the daemon at {address.url} is not one tao started for you ({refusal}); {_SERVICE_STOP}")
    found = listener_process(address)
    if found is None:
        return None
    pid, uid = found
    if uid != os.getuid():
        raise TaoClientError(f"the daemon at {address.url} runs as uid {uid}, not as you; {_SERVICE_STOP}")
    if pid <= 0:
        raise TaoClientError(f"the daemon at {address.url} runs in another pid namespace (a container?); {_SERVICE_STOP}")
    deadline = time.monotonic() + timeout
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass  # it ended between the look-up and now
    for what, gone in (
        (f"its process ({pid})", lambda: _process_gone(pid)),
        (f"its socket {address.socket_path}", lambda: _socket_released(address)),
        (f"the lock of its data dir {data_dir}", lambda: data_dir is None or _lock_free(os.path.join(data_dir, "daemon.lock"))),
    ):
        while not gone():
            if time.monotonic() > deadline:
                raise TaoClientError(
                    f"tao-server (pid {pid}) was asked to stop but {what} is still there after {timeout:.0f} s; "
                    f"its log: {log_path()}. `kill -KILL {pid}` ends it (its running jobs go on)"
                )
            time.sleep(0.02)
    return pid


_SERVICE_STOP = "a service's daemon is stopped by its admin: `systemctl stop tao-server`, or `docker compose stop`"


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return True  # another user's process has the pid now: ours, of this user, is gone
    try:  # a zombie (a child of this very process, not yet reaped) has ended too
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] == b"Z"
    except OSError:
        return True


def _socket_released(address: Address) -> bool:
    """The socket file is gone; or nothing listens on it (its daemon was killed before it could remove it), and it is removed."""
    path = address.socket_path or ""
    if not os.path.exists(path):
        return True
    if listening(address):
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return True


def _lock_free(path: str) -> bool:
    import fcntl

    try:
        with open(path) as lock:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return True  # no lock file: nothing holds it
    return True


def differences(reported: dict[str, object]) -> list[tuple[str, str | None, str | None]]:
    """(variable, the daemon's value, this environment's) for each TAO_* setting the daemon started with that
    this process's environment gives otherwise. Paths compare as the files they name, each from its own
    working directory."""
    environment = reported.get("environment")
    if not isinstance(environment, dict):
        return []
    cwd = str(reported.get("cwd") or "")
    found = []
    for name, theirs in sorted(environment.items()):
        ours = os.environ.get(name) or None
        if not _same(theirs, cwd, ours, os.getcwd()):
            found.append((name, theirs, ours))
    return found


def describe(differences: list[tuple[str, str | None, str | None]], separator: str) -> str:
    """The differences for people: "TAO_MANIFEST: /x/m.json here, unset in the daemon", one per `separator`."""
    return separator.join(f"{name}: {here or 'unset'} here, {theirs or 'unset'} in the daemon" for name, theirs, here in differences)


def _same(theirs: str | None, their_cwd: str, ours: str | None, our_cwd: str) -> bool:
    if theirs is None or ours is None:
        return theirs is ours
    return _as_path(theirs, their_cwd) == _as_path(ours, our_cwd)


def _as_path(value: str, cwd: str) -> str:
    """A value that reads as a file's path (/..., ~/..., ./x, a/b), as an absolute path; anything else (0,1, unix:///x) as it is."""
    if "://" in value or not (value.startswith(("/", "~", ".")) or "/" in value):
        return value
    return os.path.normpath(os.path.join(cwd, os.path.expanduser(value)))

"""An interactive session on a job: your terminal wired to the task's, through the SDK's Terminal (`Client.terminal`).

On a terminal (`-t`), the local one goes to raw mode: every key, Ctrl-C and Ctrl-Z included,
reaches the task's terminal, whose programs turn them into signals. Its size goes along at the
start and on each SIGWINCH. Ctrl-P Ctrl-Q detaches (as Docker): the job goes on, and
`tao attach JOB` comes back. The local terminal's modes are restored on every way out: the
job's end, a detach, a lost daemon, SIGTERM or SIGHUP (which detach too, as for
`docker run -t`). Without a terminal (`-i` alone) the input is copied until its end, which the
task then reads as EOF; Ctrl-C and SIGTERM stop the job, as for any attached run.
"""

from __future__ import annotations

import os
import select
import signal
import sys

from tao_client._errors import ApiError, DaemonUnreachable, SessionClosed, TaoClientError
from tao_client.cli._common import EXIT_LAUNCHER, EXIT_SIGINT, EXIT_SIGTERM, error

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from types import FrameType
    from typing import Any

    from tao_client._terminal import Terminal
    from tao_client.client import Client

DETACH_KEYS = b"\x10\x11"  # Ctrl-P Ctrl-Q
_HELD_SIGNALS = frozenset({signal.SIGTERM, signal.SIGHUP, signal.SIGINT})
EXIT_SIGHUP = 129
INPUT_CHUNK = 64 * 1024


class Detached(Exception):
    """The session ends and the job goes on: detach keys, SIGTERM or SIGHUP on a terminal, or the input's loss."""

    def __init__(self, code: int = 0) -> None:
        super().__init__(code)
        self.code = code


class _Signalled(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def session(client: Client, job_id: str, *, tty: bool, offset: int | None) -> int:
    """Run the session to its end; the task's exit code, 0 after a detach, 125 when the daemon is lost.

    What `tao` has to say is said once the terminal is itself again (raw mode has no carriage returns).
    """
    try:
        terminal = client.terminal(job_id, offset)
    except ApiError as exc:
        error(exc.message)
        return EXIT_LAUNCHER
    raw = tty and os.isatty(sys.stdin.fileno())
    ending = _Ending(EXIT_LAUNCHER)
    try:
        with _LocalTerminal(raw) as local:
            ending = _Session(client, job_id, terminal, local).run()
    except _Signalled as signalled:  # between the session's end and the terminal's restoring
        ending = _Ending(EXIT_SIGHUP if signalled.signum == signal.SIGHUP else EXIT_SIGTERM)
    finally:
        terminal.close()
    if ending.detached:
        print(f"tao: detached from job {job_id}; `tao attach {job_id}` returns to it, `tao stop {job_id}` ends it", file=sys.stderr)
    elif ending.message is not None:
        error(ending.message)
    return ending.code if ending.code is not None else _job_exit_code(client, job_id)


class _Ending:
    """How a session ended: the exit code (None: the job's own, asked once the terminal is restored), and what to say."""

    def __init__(self, code: int | None, message: str | None = None, detached: bool = False) -> None:
        self.code = code
        self.message = message
        self.detached = detached


def _job_exit_code(client: Client, job_id: str) -> int:
    from tao_client.cli.follow import exit_code

    try:
        return exit_code(client.job(job_id))
    except TaoClientError as exc:
        error(exc.message)
        return EXIT_LAUNCHER


class _LocalTerminal:
    """This process's terminal: raw while the session runs (when `raw`), as it was on every way out.

    The signals that end a session are held while the terminal changes modes, so that none can
    leave it raw between the change and the code that undoes it.
    """

    def __init__(self, raw: bool) -> None:
        self.raw = raw
        self.stdin = sys.stdin.fileno()
        self._saved: list[Any] | None = None
        self._handlers: dict[int, Any] = {}
        self.wakeup_read, self._wakeup_write = os.pipe()
        self.resized = False

    def __enter__(self) -> _LocalTerminal:
        with _signals_held():
            os.set_blocking(self._wakeup_write, False)
            self._previous_wakeup = signal.set_wakeup_fd(self._wakeup_write)
            watched = [signal.SIGTERM, signal.SIGHUP] + ([signal.SIGWINCH] if self.raw else [])
            for signum in watched:
                self._handlers[signum] = signal.signal(signum, self._on_signal)
            if self.raw:
                import termios
                import tty

                self._saved = termios.tcgetattr(self.stdin)
                tty.setraw(self.stdin, termios.TCSANOW)  # TCSANOW: keys typed before the session are kept, not flushed
            self.resized = self.raw
        return self

    def __exit__(self, *exc: object) -> None:
        with _signals_held():
            if self._saved is not None:
                import termios

                try:
                    termios.tcsetattr(self.stdin, termios.TCSADRAIN, self._saved)
                except termios.error:
                    pass  # the terminal is gone (hung up): nothing to restore
            for signum, handler in self._handlers.items():
                signal.signal(signum, handler)
            signal.set_wakeup_fd(self._previous_wakeup)
            os.close(self.wakeup_read)
            os.close(self._wakeup_write)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGWINCH:
            self.resized = True
            return
        raise _Signalled(signum)

    def size(self) -> tuple[int, int]:
        columns, lines = os.get_terminal_size(self.stdin)
        return lines, columns


class _signals_held:
    """SIGTERM, SIGHUP and SIGINT wait (blocked) inside the block, and arrive at its end."""

    def __enter__(self) -> None:
        self._before = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)

    def __exit__(self, *exc: object) -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, self._before)


class _Session:
    def __init__(self, client: Client, job_id: str, terminal: Terminal, local: _LocalTerminal) -> None:
        self._client = client
        self._job_id = job_id
        self._terminal = terminal
        self._local = local
        self._stdout = sys.stdout.fileno()
        self._input_open = True
        self._held = b""  # a Ctrl-P that may begin the detach keys

    def run(self) -> _Ending:
        try:
            self._loop()
        except Detached as detached:
            return _Ending(detached.code, detached=True)
        except _Signalled as signalled:
            return self._on_signal(signalled.signum)
        except KeyboardInterrupt:  # Ctrl-C without a terminal of its own: stop the job, as an attached run does
            self._stop_job()
            return _Ending(EXIT_SIGINT)
        except SessionClosed as closed:
            return _Ending(EXIT_LAUNCHER, f"the daemon closed the session ({closed.code}); `tao attach {self._job_id}` tries again")
        except DaemonUnreachable as exc:
            return _Ending(EXIT_LAUNCHER, f"{exc.message}\nthe job goes on under the daemon; `tao attach {self._job_id}` returns to it")
        except ApiError as exc:
            return _Ending(EXIT_LAUNCHER, exc.message)
        return _Ending(None)

    def _loop(self) -> None:
        """Keys to the task and its output to the screen, until the session ends."""
        while True:
            self._send_size()
            # Keys are looked at on every turn, even while output is waiting: a flood of it must not hold up a Ctrl-C.
            watched: list[Any] = [self._local.wakeup_read] + ([self._local.stdin] if self._input_open else [])
            waiting = self._terminal.pending()
            ready, _, _ = select.select(watched + ([] if waiting else [self._terminal]), [], [], 0 if waiting else None)
            if self._local.wakeup_read in ready:
                os.read(self._local.wakeup_read, 512)
                self._send_size()  # a resize before the keys typed after it
            if self._input_open and self._local.stdin in ready:
                self._forward_input()
            if (waiting or self._terminal in ready) and (output := self._terminal.receive()) is not None:
                _write_all(self._stdout, output)
            elif self._terminal.end is not None:
                return

    def _send_size(self) -> None:
        if self._local.resized:
            self._local.resized = False
            self._terminal.resize(*self._local.size())

    def _forward_input(self) -> None:
        data = os.read(self._local.stdin, INPUT_CHUNK)
        if not data:
            self._input_open = False
            if self._local.raw:  # the terminal itself is gone: nothing more can be typed
                raise Detached(EXIT_SIGHUP)
            self._terminal.end_input()
            return
        if self._local.raw:
            data = self._without_detach_keys(data)
        if data:
            self._terminal.send(data)

    def _without_detach_keys(self, data: bytes) -> bytes:
        """The keys to send; Detached when they end in Ctrl-P Ctrl-Q. A lone trailing Ctrl-P waits for the next key."""
        data, self._held = self._held + data, b""
        found = data.find(DETACH_KEYS)
        if found >= 0:
            if found:
                self._terminal.send(data[:found])
            raise Detached
        if data.endswith(DETACH_KEYS[:1]):
            data, self._held = data[:-1], data[-1:]
        return data

    def _on_signal(self, signum: int) -> _Ending:
        code = EXIT_SIGHUP if signum == signal.SIGHUP else EXIT_SIGTERM
        if self._local.raw:
            return _Ending(code, detached=True)
        self._stop_job()
        return _Ending(code)

    def _stop_job(self) -> None:
        print(f"\ntao: stopping job {self._job_id}...", file=sys.stderr)
        try:
            self._client.cancel(self._job_id)
            self._client.wait_until_done(self._job_id, timeout=60)
        except (KeyboardInterrupt, _Signalled):
            print(f"tao: not waiting; the daemon goes on stopping job {self._job_id}", file=sys.stderr)
        except TaoClientError as exc:
            print(f"tao: could not confirm that job {self._job_id} stopped: {exc.message}", file=sys.stderr)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BrokenPipeError:
            return
        view = view[written:]


def wait_for_start(client: Client, job_id: str, progress: Any) -> bool:
    """Wait while the job is queued or pulls its image (progress shows); True once it runs, False when it ended first.

    Ctrl-C or SIGTERM meanwhile cancels it, as for any attached run.
    """
    import time

    from tao_client.cli.follow import Terminated, _raise_terminated

    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    delay = 0.01
    try:
        while (status := client.job(job_id).status) in ("queued", "pulling", "starting"):
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
        return status == "running"
    except (KeyboardInterrupt, Terminated):
        print(f"\ntao: stopping job {job_id}...", file=sys.stderr)
        client.cancel(job_id)
        return False
    finally:
        progress.stop()
        signal.signal(signal.SIGTERM, previous)

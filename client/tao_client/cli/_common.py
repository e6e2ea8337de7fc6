"""What every `tao` command shares: exit codes, error output, and the client it talks through."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs an import the CLI does not need at run time
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn

    from tao_client.client import Client

# As `docker run`: the launcher or engine failed (125), the entrypoint cannot run (126) or is missing (127).
EXIT_LAUNCHER = 125
EXIT_SIGINT = 130
EXIT_SIGTERM = 143
EXIT_STDOUT_CLOSED = 141  # 128 + SIGPIPE: what a shell reports for a tool whose reader went away


class LauncherOptions:
    """Options given before the task or command."""

    def __init__(
        self,
        *,
        host: str | None = None,
        detach: bool = False,
        gpus: str = "auto",
        gpu_indices: list[str] | None = None,
        job_id: str | None = None,
        mounts: str | None = None,
        pull: str | None = None,
        nodes: int | None = None,
        time: str | None = None,
        interactive: bool | None = None,
        tty: bool | None = None,
        notify: list[str] | None = None,
        status_file: str | None = None,
        after: list[str] | None = None,
        after_any: list[str] | None = None,
        retries: int = 0,
    ) -> None:
        self.host = host
        self.detach = detach
        self.gpus = gpus
        self.gpu_indices = gpu_indices
        self.job_id = job_id
        self.mounts = mounts
        self.pull = pull
        self.nodes = nodes
        self.time = time
        # None: as the terminal says (both when stdin and stdout are one); True or False: as given.
        self.interactive = interactive
        self.tty = tty
        self.notify = list(notify or [])  # --notify URL, repeatable
        self.status_file = status_file  # TAO's status.json as the container sees it, where the results dir does not say
        self.after = list(after or [])  # --after JOB_ID, repeatable: all must succeed first
        self.after_any = list(after_any or [])  # --after-any JOB_ID, repeatable: all must end first
        self.retries = retries  # --retries N: runs again after a non-zero exit, up to N more times

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LauncherOptions) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"LauncherOptions({vars(self)})"


class UsageError(Exception):
    pass


def connect(options: LauncherOptions, check_daemon: bool = False) -> Client:
    """The client for the daemon the options name; `check_daemon`: first warn when the daemon `tao` started
    runs with other TAO_* settings than this environment's (once per command, not for its helpers)."""
    from tao_client.client import Client

    client = Client(options.host)
    if check_daemon:
        warn_if_settings_differ(client)
    return client


def warn_if_settings_differ(client: Client) -> None:
    """Where `tao` would start a daemon itself, ask the one there (one request, answered from memory) for the
    settings it started with, and warn on stderr when this environment gives others."""
    from tao_client import address
    from tao_client._errors import TaoClientError

    if address.autostart_refusal(client.address) is not None:
        return
    try:
        reported = client.running_daemon()
    except TaoClientError:
        return  # the command itself says what is wrong
    if reported is None or reported.get("started_by") != "tao":
        return
    from tao_client import local_daemon

    if differences := local_daemon.differences(reported):
        print(
            f"tao: warning: the daemon tao started for you (pid {reported.get('pid', '?')}) runs with other TAO_* settings "
            f"than this environment's:\n  {local_daemon.describe(differences, chr(10) + '  ')}\n"
            "  restart it to take this environment's: tao daemon restart (running jobs go on)",
            file=sys.stderr,
            flush=True,
        )


def error(message: str) -> None:
    print(f"tao: error: {message}", file=sys.stderr)


def fail(message: str, code: int = EXIT_LAUNCHER) -> NoReturn:
    error(message)
    sys.exit(code)


def write_out(data: bytes) -> None:
    """Write all of `data` to stdout, or raise BrokenPipeError (which `main` turns into a quiet end).

    A large write that breaks off when its reader goes (`| head`) says how much it wrote, not why,
    and `print` drops that count: so much output goes here, where the next write raises.
    """
    sys.stdout.flush()  # what print() holds goes first
    view = memoryview(data)
    while view:
        view = view[sys.stdout.buffer.write(view) :]
    sys.stdout.buffer.flush()


def write_text(text: str) -> None:
    """write_out for text, in stdout's encoding."""
    write_out(text.encode(sys.stdout.encoding or "utf-8", sys.stdout.errors or "strict"))


def not_utf8(text: str) -> str | None:
    """`text` with the bytes that are not UTF-8 written as \\xNN ('caf\\xe9.jpg'), or None when it is all UTF-8."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a surrogate that stands for no byte: only a caller in Python makes one
            return ascii(text)[1:-1]
    return None


def print_table(rows: Sequence[tuple[str, ...]], last_width: int | None = None) -> None:
    """Columns padded to their widest cell, two spaces apart; the first row is the header.

    `last_width`: the whole line's width, which the last column is cut to fit (down to MIN_LAST
    characters), marked with an ellipsis; None: no cut.
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    room = None if last_width is None else max(MIN_LAST, last_width - sum(widths[:-1]) - 2 * (len(widths) - 1))
    ellipsis = "…" if (sys.stdout.encoding or "").lower().replace("-", "") == "utf8" else "..."
    lines = []
    for row in rows:
        cells = list(row)
        if room is not None and len(cells[-1]) > room:
            cells[-1] = cells[-1][: room - len(ellipsis)] + ellipsis
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip() + "\n")
    write_text("".join(lines))


MIN_LAST = 20

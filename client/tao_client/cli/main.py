"""`tao [launcher options] <task> <subtask> [args...]`, `tao <group> <task> ...`, and the verbs of `commands`.

Everything after the subtask reaches the task unchanged, so this parses by hand rather than with
argparse, which would claim options such as `--help` that belong to the task.
"""

from __future__ import annotations

import os
import sys

from tao_client.cli import commands
from tao_client.cli._common import EXIT_LAUNCHER, EXIT_STDOUT_CLOSED, LauncherOptions, UsageError, error, not_utf8

_VALUE_OPTIONS = (
    "--gpus", "--gpu-index", "--id", "--mounts", "--host", "--pull", "--nodes", "--time", "--notify", "--status-file", "--after",
    "--after-any", "--retries",
)  # fmt: skip
PULL_POLICIES = ("missing", "always", "never")


def main(argv: list[str] | None = None) -> None:
    try:
        code = run(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()
    except SystemExit as exit_:  # a usage mistake or a failure, already said
        code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    except BrokenPipeError:
        # Whoever read stdout stopped (`tao list --all | head -3`): end quietly, as tools killed by SIGPIPE do.
        code = EXIT_STDOUT_CLOSED
    try:
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    # Nothing is left to clean up: skip the interpreter's teardown, which costs a few ms per run (and would
    # flush a closed stdout again).
    os._exit(code)


def run(argv: list[str]) -> int:
    try:
        options, words = parse_launcher_options(argv)
    except UsageError as exc:
        error(f"{exc}\n{_short_usage()}")
        return EXIT_LAUNCHER
    if words is None:
        from tao_client import __version__

        print(f"tao {__version__}")
        return 0
    if (problem := undecodable_argument(argv, words, options)) is not None:
        error(problem)
        return EXIT_LAUNCHER
    from tao_client._errors import TaoClientError

    try:
        if not words or words[0] in ("-h", "--help", "help"):
            from tao_client.cli.help import print_help

            return print_help(options)
        if (command := commands.find(words[0])) is not None:
            return commands.dispatch(options, command, words[1:])
        from tao_client.cli.task import run_task

        return run_task(options, words)
    except TaoClientError as exc:
        error(exc.message)
        return EXIT_LAUNCHER


def parse_launcher_options(argv: list[str]) -> tuple[LauncherOptions, list[str] | None]:
    """Options before the first word; returns (options, remaining words), or words=None for --version."""
    options = LauncherOptions()
    index = 0
    while index < len(argv):
        arg = argv[index]
        if not arg.startswith("-") or arg in ("-h", "--help"):
            break
        if arg == "--version":
            return options, None
        if _short_flags(options, arg):
            index += 1
            continue
        name, has_value, value = arg.partition("=")
        if name in _SWITCHES:
            setattr(options, _SWITCHES[name], _switch(name, value if has_value else "true"))
            index += 1
            continue
        if name not in _VALUE_OPTIONS:
            raise UsageError(f"unknown launcher option {arg!r}")
        if not has_value:
            if index + 1 >= len(argv):
                raise UsageError(f"{name} needs a value")
            value = argv[index + 1]
            index += 1
        index += 1
        _set_option(options, name, value)
    return options, argv[index:]


# As `docker run` spells them; each also takes =true or =false (--tty=false: no terminal, whatever auto-detection says).
_SWITCHES = {"--detach": "detach", "--interactive": "interactive", "--tty": "tty"}
_SHORT = {"d": "detach", "i": "interactive", "t": "tty"}


def _short_flags(options: LauncherOptions, arg: str) -> bool:
    """-d, -i, -t and their bundles (-it, -dit); False when `arg` is something else."""
    letters = arg[1:]
    if arg.startswith("--") or not letters or any(letter not in _SHORT for letter in letters):
        return False
    for letter in letters:
        setattr(options, _SHORT[letter], True)
    return True


def _switch(name: str, value: str) -> bool:
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise UsageError(f"{name}={value!r}: expected true or false")


def undecodable_argument(argv: list[str], words: list[str], options: LauncherOptions) -> str | None:
    """Why an argument bound for the daemon cannot reach it, or None.

    Python decodes bytes in argv that are not UTF-8 to lone surrogates (surrogateescape), which
    no UTF-8 text, and so no request, can carry. The words after the launcher options, `--id`
    and `--gpus` go to the daemon; `--mounts` and `--host` are paths opened here, and may be any
    bytes the file system takes.
    """
    first = len(argv) - len(words) + 1  # the first word's position on the command line, as the shell's $1
    named = [(f"argument {first + index}", word) for index, word in enumerate(words)]
    named += [
        (option, value)
        for option, value in (
            ("--id", options.job_id),
            ("--gpus", options.gpus),
            ("--time", options.time),
            ("--status-file", options.status_file),
        )
        if value is not None
    ]
    named += [("--notify", url) for url in options.notify]
    named += [("--after", job_id) for job_id in options.after] + [("--after-any", job_id) for job_id in options.after_any]
    for name, text in named:
        if (shown := not_utf8(text)) is not None:
            return f"{name} '{shown}' is not valid UTF-8, and tao sends arguments as UTF-8 text; give it in UTF-8 (a file name: rename the file)"
    return None


def _set_option(options: LauncherOptions, name: str, value: str) -> None:
    if name == "--gpus":
        options.gpus = value
    elif name == "--gpu-index":
        indices = [part.strip() for part in value.split(",") if part.strip()]
        if not indices or not all(part.isdigit() for part in indices):
            raise UsageError(f"--gpu-index {value!r}: expected GPU indices such as 0 or 0,2")
        options.gpu_indices = indices
    elif name == "--nodes":
        if not value.isdigit() or int(value) < 1:
            raise UsageError(f"--nodes {value!r}: expected a number of nodes, 1 or more")
        options.nodes = int(value)
    elif name == "--time":
        options.time = value  # the daemon reads Slurm's forms (MM, HH:MM:SS, D-HH:MM, ...) and names what is wrong
    elif name == "--id":
        options.job_id = value
    elif name == "--notify":
        options.notify.append(value)  # the daemon checks the URL and says what is wrong with it
    elif name in ("--after", "--after-any"):
        (options.after if name == "--after" else options.after_any).append(value)  # the daemon names an unknown job
    elif name == "--retries":
        if not value.isdigit() or not value.isascii():
            raise UsageError(f"--retries {value!r}: expected how many more times to run after a failure: 0, 1, 2, ...")
        options.retries = int(value)
    elif name == "--mounts":
        options.mounts = value
    elif name == "--host":
        options.host = value
    elif name == "--status-file":
        options.status_file = value  # the daemon checks it against the mounts and says what it sees
    elif name == "--pull":
        if value not in PULL_POLICIES:
            raise UsageError(f"--pull {value!r}: expected one of {', '.join(PULL_POLICIES)}")
        options.pull = value


def _short_usage() -> str:
    return "usage: tao [launcher options] <task> <subtask> [args...]   (tao --help for more)"

"""The `tao` verbs, in one table that drives parsing, dispatch and `tao --help`.

Each row names a verb, says what it does in one line of `tao --help`, and names the module under
`tao_client.cli` that implements it, with that module's parser factory and handler. A parser
factory takes no arguments and returns a `tao_client.cli._parser.Parser`; a handler takes the
connected `Client` and the parsed arguments and returns the exit code. Neighbouring rows with the
same summary share one line of `tao --help` ("login, logout").

The table is plain strings: `tao --help` and task runs read it without importing argparse or any
verb module; `dispatch` imports only the module of the verb it runs.
"""

from __future__ import annotations

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from tao_client.cli._common import LauncherOptions


class Command:
    """One verb: its name, its summary in `tao --help`, and where its parser and handler live."""

    __slots__ = ("handler", "module", "name", "parser", "summary")

    def __init__(self, name: str, summary: str, module: str, parser: str, handler: str) -> None:
        self.name = name
        self.summary = summary
        self.module = module
        self.parser = parser
        self.handler = handler

    def __repr__(self) -> str:
        return f"Command({self.name!r}, tao_client.cli.{self.module}.{self.handler})"


_LOGINS = "store or forget your registry login: tao login nvcr.io (--list shows yours)"

COMMANDS = (
    Command("list", "jobs queued and running, newest first (--all adds finished ones, --json)", "jobs", "list_parser", "list_jobs"),
    Command("stop", "stop jobs: tao stop JOB_ID... | --container_id ID... | --all", "jobs", "stop_parser", "stop_jobs"),
    Command("info", "the daemon, its task manifest, the Docker engine and GPUs", "info", "info_parser", "show_info"),
    Command("show", "one job in full: status, error, times, image, mounts, events, last output", "show", "show_parser", "show_job"),
    Command("logs", "a job's output: tao logs JOB_ID [-f]", "jobs", "logs_parser", "show_logs"),
    Command(
        "metrics",
        "a job's training KPIs and a line per epoch: tao metrics JOB_ID [-f] [--json|--csv]",
        "metrics",
        "metrics_parser",
        "show_metrics",
    ),
    Command(
        "events",
        "a job's events: pulls, GPUs, notification tries: tao events JOB_ID [-f]",
        "events",
        "events_parser",
        "show_events",
    ),
    Command("attach", "return to a job's terminal (or its output): tao attach JOB_ID", "attach", "attach_parser", "attach_job"),
    Command(
        "port-forward",
        "reach a job's port from here: tao port-forward JOB_ID [LOCAL:]REMOTE",
        "port_forward",
        "forward_parser",
        "forward_ports",
    ),
    Command(
        "pipeline",
        "run a pipeline file's steps as one: tao pipeline run FILE.yaml [-d] | list | show ID | stop ID",
        "pipeline",
        "pipeline_parser",
        "manage",
    ),
    Command(
        "sweep",
        "hyperparameter sweeps, each trial a job: tao sweep run SWEEP.yaml [-d] | list | show ID | stop ID",
        "sweep",
        "sweep_parser",
        "manage_sweeps",
    ),
    Command("pull", "pull the images of tasks ahead of time: tao pull TASK...", "images", "pull_parser", "pull_images"),
    Command("images", "the manifest's images: present or not, size, digest, tasks", "images", "images_parser", "list_images"),
    Command("login", _LOGINS, "images", "login_parser", "login"),
    Command("logout", _LOGINS, "images", "logout_parser", "logout"),
    Command(
        "notify",
        "post your jobs' starts and ends to URLs: tao notify add|list|rm URL, tao notify secret",
        "notify",
        "notify_parser",
        "manage",
    ),
    Command("ui", "open the dashboard in a browser, signed in as you: tao ui", "ui", "ui_parser", "open_dashboard"),
    Command(
        "daemon", "the daemon tao starts for you: tao daemon status|start|stop|restart|logs", "daemon", "daemon_parser", "manage_daemon"
    ),
)

_BY_NAME = {command.name: command for command in COMMANDS}


def find(name: str) -> Command | None:
    """The verb called `name`, or None when `name` is not a verb (it is then a task)."""
    return _BY_NAME.get(name)


def unknown_word(word: str, tasks: list[str], groups: list[str]) -> str:
    """What `tao WORD` says when WORD is no verb, task or group: the ones it is closest to (`tao lst`: did you mean `tao list`?)."""
    import difflib

    verbs = difflib.get_close_matches(word, [command.name for command in COMMANDS], n=2, cutoff=0.6)
    names = difflib.get_close_matches(word, [*tasks, *groups], n=3, cutoff=0.6)
    kind = "task" if names and not verbs else "command or task"
    guesses = [f"`tao {verb}`" for verb in verbs] + names
    hint = f"did you mean {' or '.join(guesses)}?" if guesses else "`tao --help` lists the commands and the daemon's tasks"
    return f"unknown {kind} {word!r}; {hint}"


def help_lines() -> list[tuple[str, str]]:
    """(names, summary) for each line of `tao --help`, in table order."""
    lines: list[tuple[str, str]] = []
    for command in COMMANDS:
        if lines and lines[-1][1] == command.summary:
            lines[-1] = (f"{lines[-1][0]}, {command.name}", command.summary)
        else:
            lines.append((command.name, command.summary))
    return lines


def dispatch(options: LauncherOptions, command: Command, args: list[str]) -> int:
    """Parse the verb's arguments (a usage mistake exits 125 before any connection), then run it."""
    from importlib import import_module

    from tao_client.cli._common import connect

    module = import_module(f"tao_client.cli.{command.module}")
    parsed = getattr(module, command.parser)().parse_args(args)
    # `tao daemon` shows and fixes a daemon's settings itself: no warning about them first.
    parsed.launcher = options  # for verbs that submit jobs (`tao pipeline run`, `tao sweep run`): --mounts, --notify, --pull
    with connect(options, check_daemon=command.name != "daemon") as client:
        code: int = getattr(module, command.handler)(client, parsed)
    return code

"""`tao --help` and `tao <task> --help`."""

from __future__ import annotations

import sys

from tao_client.cli import commands
from tao_client.cli._common import LauncherOptions, connect

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

USAGE = """\
usage: tao [launcher options] <task> <subtask> [args...]
       tao [launcher options] <group> <task> <subtask> [args...]
       tao {verbs} ...

Launcher for TAO Toolkit: runs each task in its container through the tao daemon,
streams its output, and exits with the task's exit code."""

OPTIONS = """\
launcher options (before the task):
  -d, --detach          print the job id and return at once; `tao logs -f ID` attaches later
  -i, --interactive     keep the task's input open and send it yours (default: when stdin and
                        stdout are a terminal); --interactive=false turns it off
  -t, --tty             run the task on a terminal, yours in raw mode (default: as -i);
                        Ctrl-P Ctrl-Q detaches, `tao attach ID` returns
  --gpus SPEC           all, none, or a count (default: all GPUs when the host has any)
  --gpu-index LIST      exact GPU indices, e.g. 0,2
  --nodes N             nodes for the job (Slurm backend)
  --time LIMIT          time limit, as Slurm writes it: MM, HH:MM:SS, D-HH[:MM[:SS]] (Slurm backend)
  --id ID               job id to use; resubmitting the same id is harmless
  --notify URL          POST the job's start and end to URL (repeatable), beside your defaults
                        (`tao notify add`); Slack, Mattermost and Teams webhooks show its `text`
  --mounts FILE         launcher config (default: $LAUNCHER_MOUNTS or ~/.tao_mounts.json)
  --host ADDRESS        daemon address (default: $TAO_HOST, else the local socket);
                        over http(s) the token comes from $TAO_TOKEN, a CA bundle from $TAO_CA_CERT
  --pull POLICY         missing (pull an absent image), always, or never (default: the daemon's)
  -h, --help            this help; `tao <task> --help` lists a task's subtasks
  --version             the client's version"""


def print_help(options: LauncherOptions) -> int:
    from tao_client._errors import TaoClientError

    print(format_usage(), end="\n\n")
    print(format_commands(), end="\n\n")
    try:
        with connect(options, check_daemon=True) as client:
            print(format_tasks(client.tasks()), end="\n\n")
    except TaoClientError as exc:
        print(f"tasks:\n  (unavailable: {exc.message})", end="\n\n")
    print(OPTIONS)
    return 0


def format_usage() -> str:
    return USAGE.format(verbs="{" + ",".join(command.name for command in commands.COMMANDS) + "}")


def format_commands() -> str:
    return "\n".join(["commands:", *(f"  {names:<21} {summary}" for names, summary in commands.help_lines())])


def format_tasks(tasks: dict[str, Any]) -> str:
    by_group: dict[str | None, list[str]] = {}
    for task in tasks["tasks"]:
        by_group.setdefault(task["group"], []).append(task["name"])
    lines = [f"tasks (from {tasks['manifest_source']}):"]
    for group, names in by_group.items():
        prefix = f"  {group}: " if group else "  "
        lines.append(_wrap(prefix, sorted(names)))
    return "\n".join(lines)


def print_task_help(task: dict[str, Any]) -> None:
    where = f"{task['group']} {task['name']}" if task["group"] else task["name"]
    print(f"usage: tao {where} <subtask> [args...]\n")
    print(f"Runs in {task['image']}.\n")
    print(_wrap("subtasks: ", task["subtasks"]))
    print(f"\n`tao {where} <subtask> --help` shows a subtask's own options.")
    sys.stdout.flush()


def _wrap(prefix: str, names: list[str], width: int = 100) -> str:
    lines, line = [], prefix
    for index, name in enumerate(names):
        piece = name + ("," if index < len(names) - 1 else "")
        if len(line) + len(piece) + 1 > width and line.strip():
            lines.append(line.rstrip())
            line = " " * len(prefix)
        line += piece + " "
    lines.append(line.rstrip())
    return "\n".join(lines)

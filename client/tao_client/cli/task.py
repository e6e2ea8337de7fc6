"""`tao [<group>] <task> <subtask> [args...]`: submit a job and attach to it."""

from __future__ import annotations

import sys

from tao_client.cli import notes
from tao_client.cli._common import LauncherOptions, UsageError, connect, fail
from tao_client.cli.follow import attach
from tao_client.cli.help import print_task_help

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

    from tao_client.client import Client, Job


def run_task(options: LauncherOptions, words: list[str]) -> int:
    with connect(options, check_daemon=True) as client:
        tasks = client.tasks()
        try:
            group, task, rest = split_words(tasks, words)
            known(tasks, group, task)
        except UsageError as exc:
            fail(str(exc))
        info = _find(tasks, group, task)
        try:
            interactive, tty = terminal_modes(options, tasks.get("interactive", False))
        except UsageError as exc:
            fail(str(exc))
        if not rest and interactive:
            rest = ["run"]  # `tao <task>` on a terminal: the image's own shell, as NVIDIA's launcher gives
        if not rest or rest[0] in ("-h", "--help"):
            if info is not None and info["subtasks"]:
                print_task_help(info)
                return 0
            rest = ["--help"]  # the manifest knows no subtasks: ask the task itself
        subtask, args = (None, rest) if rest[0].startswith("-") else (rest[0], rest[1:])
        job = _submit(client, options, group, task, subtask, args, interactive, tty)
        if options.detach:
            print(job.id)
            return 0
        from tao_client.cli.pull_progress import PullWatcher

        progress = PullWatcher(lambda: connect(options), job.id)
        progress.start()
        if not interactive:
            return attach(client, job.id, cancel_on_signal=True, progress=progress)
        from tao_client.cli.terminal import session, wait_for_start

        # Pull progress and a Ctrl-C that cancels stay as for any run until the task starts; then the terminal is the task's.
        if not wait_for_start(client, job.id, progress):
            return attach(client, job.id, cancel_on_signal=True)  # it ended first: show how
        return session(client, job.id, tty=tty, offset=0)


def _submit(
    client: Client,
    options: LauncherOptions,
    group: str | None,
    task: str,
    subtask: str | None,
    args: list[str],
    interactive: bool,
    tty: bool,
) -> Job:
    """Submit as the SDK does (it reads the launcher config), and say on stderr what the SDK warns of."""
    import warnings

    from tao_client._errors import LaunchWarning, NoLaunchConfig

    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always", LaunchWarning)
        job = client.submit(
            task,
            subtask,
            args,
            group=group,
            launch_config=options.mounts,  # None: $LAUNCHER_MOUNTS or ~/.tao_mounts.json, as the SDK reads it
            gpus=options.gpus,
            gpu_indices=options.gpu_indices,
            job_id=options.job_id,
            pull=options.pull,
            nodes=options.nodes,
            time=options.time,
            interactive=interactive,
            tty=tty,
            notify=options.notify,
            status_file=options.status_file,
            after=options.after,
            after_any=options.after_any,
            retries=options.retries,
        )
    missing = [warning for warning in said if isinstance(warning.message, NoLaunchConfig)]
    if missing:
        notes.say_once("no-launch-config", str(missing[0].message))
    elif options.mounts is None:
        notes.forget("no-launch-config")
    for warning in said:
        if isinstance(warning.message, LaunchWarning) and not isinstance(warning.message, NoLaunchConfig):
            print(f"tao: warning: {warning.message}", file=sys.stderr)
    return job


def terminal_modes(options: LauncherOptions, daemon_attaches: bool = True) -> tuple[bool, bool]:
    """(interactive, tty): as `docker run` reads -i and -t when either is given. With neither, both when
    stdin and stdout are a terminal, the run is attached (no -d) and the daemon's jobs can take a
    terminal (not a batch backend); else neither: today's batch runs, unchanged."""
    if options.interactive is None and options.tty is None:
        import os

        on_terminal = not options.detach and daemon_attaches and os.isatty(0) and os.isatty(1)
        return on_terminal, on_terminal
    interactive, tty = bool(options.interactive), bool(options.tty)
    if interactive and tty and not options.detach:
        import os

        if not os.isatty(0):
            raise UsageError("-t with -i needs a terminal on stdin (as `docker run -it`); with input from a pipe use -i alone")
    return interactive, tty


def split_words(tasks: dict[str, Any], words: list[str]) -> tuple[str | None, str, list[str]]:
    """(group, task, rest): the first word is a group when the manifest has groups and names it."""
    if words[0] in tasks["groups"]:
        if len(words) < 2 or words[1].startswith("-"):
            names = sorted(t["name"] for t in tasks["tasks"] if t["group"] == words[0])
            raise UsageError(f"usage: tao {words[0]} <task> <subtask> [args...]; tasks in {words[0]}: {', '.join(names)}")
        return words[0], words[1], words[2:]
    return None, words[0], words[1:]


def known(tasks: dict[str, Any], group: str | None, name: str) -> None:
    """UsageError for a first word that is neither a verb, a group nor a task, with the names it is closest to.

    A task of a group that lacks it is the daemon's to refuse: it names the group's tasks.
    """
    if group is not None or any(task["name"] == name for task in tasks["tasks"]):
        return
    from tao_client.cli import commands

    raise UsageError(commands.unknown_word(name, sorted({task["name"] for task in tasks["tasks"]}), tasks["groups"]))


def _find(tasks: dict[str, Any], group: str | None, name: str) -> dict[str, Any] | None:
    for task in tasks["tasks"]:
        if task["name"] == name and (group is None or task["group"] == group):
            return task
    return None

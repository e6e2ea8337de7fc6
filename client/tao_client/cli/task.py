"""`tao [<group>] <task> <subtask> [args...]`: submit a job and attach to it."""

from __future__ import annotations

from tao_client import launch_config
from tao_client.cli._common import LauncherOptions, UsageError, connect, fail, not_utf8
from tao_client.cli.attach import attach
from tao_client.cli.help import print_task_help

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any


def run_task(options: LauncherOptions, words: list[str]) -> int:
    with connect(options, check_daemon=True) as client:
        tasks = client.tasks()
        try:
            group, task, rest = split_words(tasks, words)
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
        config, source = launch_config.read(options.mounts)
        job = client.submit(
            task,
            subtask,
            args,
            group=group,
            launch_config=config,
            # Only named in messages: a path that is not UTF-8 goes as its readable form, which a request can carry.
            launch_config_source=source if source is None else (not_utf8(source) or source),
            gpus=options.gpus,
            gpu_indices=options.gpu_indices,
            job_id=options.job_id,
            pull=options.pull,
            nodes=options.nodes,
            time=options.time,
            interactive=interactive,
            tty=tty,
        )
        if options.detach:
            print(job.id)
            return 0
        from tao_client.cli.progress import PullWatcher

        progress = PullWatcher(lambda: connect(options), job.id)
        progress.start()
        if not interactive:
            return attach(client, job.id, cancel_on_signal=True, progress=progress)
        from tao_client.cli.terminal import session, wait_for_start

        # Pull progress and a Ctrl-C that cancels stay as for any run until the task starts; then the terminal is the task's.
        if not wait_for_start(client, job.id, progress):
            return attach(client, job.id, cancel_on_signal=True)  # it ended first: show how
        return session(client, job.id, tty=tty, offset=0)


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


def _find(tasks: dict[str, Any], group: str | None, name: str) -> dict[str, Any] | None:
    for task in tasks["tasks"]:
        if task["name"] == name and (group is None or task["group"] == group):
            return task
    return None

"""Paths in a job's arguments, checked against its mounts before anything runs.

A task sees the host only through its mounts. An argument naming a host path that lies under a
mount's source, outside every destination, cannot be what the user meant: the container has
nothing there, and the task would fail inside (a real TAO image: after TensorFlow's start-up,
with a traceback). Such a submission is refused, with the container path to give instead.

A results dir outside every destination is allowed, with a warning: whatever the task writes
there is lost with the container. Paths under a destination, and the image's own paths (its
bundled specs: outside every mount's source), pass untouched. Arguments are never changed.

The same reading of the arguments tells where a task writes (`results_dirs`, `spec_files`) and
where a container path lies on the host (`on_host`): how jobs/progress/status_locate.py finds the
task's status file.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from tao_server.access.paths import within
from tao_server.errors import HostPathArgument, InvalidRequest
from tao_server.jobs.launch_options import LaunchConfig

# How TAO tasks take their results dir: `-r DIR`, `--results_dir DIR`, `--results_dir=DIR`, and in
# the Hydra-configured tasks `results_dir=DIR` (or `train.results_dir=DIR`, `+results_dir=DIR`).
RESULTS_OPTIONS = ("-r", "--results_dir", "--results-dir")
RESULTS_KEY = "results_dir"
# How they take their experiment spec: `-e FILE` (TAO 4 and 5), and its long spellings.
SPEC_OPTIONS = ("-e", "--experiment_spec_file", "--experiment_spec", "--experiment-spec-file")
# `tao <task> run CMD...` runs any command, whose -r may mean anything (`cp -r`): only the long forms count there.
RUN_SUBTASK = "run"


@dataclass(frozen=True)
class _Mount:
    index: int
    sources: tuple[str, ...]  # as the file gives it, and resolved
    destination: str


def check(args: list[str], config: LaunchConfig, subtask: str | None, source: str | None) -> list[str]:
    """The warnings for these arguments; HostPathArgument for a host path the container does not see."""
    mounts = [
        _Mount(index, tuple(dict.fromkeys((given, mount["source"]))), mount["destination"])
        for index, (given, mount) in enumerate(zip(config.given_sources, config.mounts, strict=True))
    ]
    where = source or "the launcher config"
    for index, arg in enumerate(args):
        for path in _paths_in(arg):
            _refuse_host_path(args, index, path, mounts, where)
    return [
        warning for index, path in _results_dirs(args, subtask) if (warning := _lost_results(args, index, path, mounts, where)) is not None
    ]


def check_status_file(path: str, config: LaunchConfig, source: str | None) -> list[str]:
    """The warnings for `--status-file PATH`; InvalidRequest when it is no absolute path."""
    if not path.startswith("/"):
        raise InvalidRequest(
            f"status_file: {path!r} is not an absolute path; give the status file as the container sees it", field="status_file"
        )
    if on_host(path, config.mounts) is not None:
        return []
    where = source or "the launcher config"
    return [
        f"--status-file {posixpath.normpath(path)}: outside every mount, so the daemon cannot read it and the job shows no progress; "
        f"give a path under a mount's destination (Mounts in {where})"
    ]


def _paths_in(arg: str) -> list[str]:
    """The absolute paths an argument names: itself, or the value of `--name=VALUE` / `key=VALUE`."""
    if arg.startswith("/"):
        return [arg]
    _, equals, value = arg.partition("=")
    return [value] if equals and value.startswith("/") else []


def _refuse_host_path(args: list[str], index: int, path: str, mounts: list[_Mount], where: str) -> None:
    normal = posixpath.normpath(path)
    if any(within(normal, mount.destination) for mount in mounts):
        return
    found = [(source, mount) for mount in mounts for source in mount.sources if within(normal, source)]
    if not found:
        return  # the image's own path, or nothing mounted there: the task says what it finds
    source, mount = max(found, key=lambda pair: len(pair[0]))  # the innermost source names it best
    inside = mount.destination.rstrip("/") + normal[len(source) :] if normal != source else mount.destination
    given = args[index].replace(path, inside, 1)
    raise HostPathArgument(
        f"{_named(args, index)}: a host path, which the task cannot see; {normal} is {inside} inside the container "
        f"(Mounts[{mount.index}] in {where}): give {given} instead",
        field=f"args[{index}]",
    )


def results_dirs(args: list[str], subtask: str | None) -> list[str]:
    """The absolute results dirs the arguments give (normalised, each once), in the order given."""
    return list(dict.fromkeys(posixpath.normpath(path) for _, path in _results_dirs(args, subtask)))


def spec_files(args: list[str], subtask: str | None) -> list[str]:
    """The absolute experiment spec files the arguments give (`-e FILE`), normalised; none for `run`."""
    if subtask == RUN_SUBTASK:
        return []
    return list(dict.fromkeys(posixpath.normpath(path) for _, path in _option_values(args, SPEC_OPTIONS) if path.startswith("/")))


@dataclass(frozen=True)
class HostPath:
    """Where a container path lies on the host: `relative` under the source of Mounts[`index`] ("" for the source itself)."""

    index: int
    source: str
    relative: str


def on_host(path: str, mounts: list[dict[str, Any]]) -> HostPath | None:
    """Where the container path `path` lies on the host, through the job's mounts; None outside every destination.

    The innermost destination wins, as in the container: a mount at /workspace/results hides that
    part of one at /workspace.
    """
    normal = posixpath.normpath(path)
    found = [(index, mount) for index, mount in enumerate(mounts) if within(normal, posixpath.normpath(mount["destination"]))]
    if not found:
        return None
    index, mount = max(found, key=lambda pair: len(posixpath.normpath(pair[1]["destination"])))
    destination = posixpath.normpath(mount["destination"])
    relative = normal[len(destination) :].strip("/") if normal != destination else ""
    return HostPath(index, mount["source"], relative)


def _results_dirs(args: list[str], subtask: str | None) -> list[tuple[int, str]]:
    """(index of the argument that names it, the dir) for each absolute results dir the arguments give."""
    options = RESULTS_OPTIONS[1:] if subtask == RUN_SUBTASK else RESULTS_OPTIONS
    found = _option_values(args, options)
    for index, arg in enumerate(args):
        key, equals, value = arg.partition("=")
        if equals and key not in options and (key.lstrip("+~") == RESULTS_KEY or key.endswith("." + RESULTS_KEY)):
            found.append((index, value))
    return [(index, path) for index, path in sorted(found) if path.startswith("/")]


def _option_values(args: list[str], options: tuple[str, ...]) -> list[tuple[int, str]]:
    """(index of the value, the value) for each `OPTION VALUE` and `OPTION=VALUE` among the arguments."""
    found = []
    for index, arg in enumerate(args):
        key, equals, value = arg.partition("=")
        if arg in options and index + 1 < len(args):
            found.append((index + 1, args[index + 1]))
        elif equals and key in options:
            found.append((index, value))
    return found


def _lost_results(args: list[str], index: int, path: str, mounts: list[_Mount], where: str) -> str | None:
    normal = posixpath.normpath(path)
    if any(within(normal, mount.destination) for mount in mounts):
        return None
    if mounts:
        destinations = ", ".join(mount.destination for mount in mounts)
        fix = f"give a dir under a mount's destination ({destinations}), or mount a host dir at {normal} (Mounts in {where})"
    else:
        fix = f"the job mounts nothing: mount a host dir at {normal} (Mounts in {where})"
    return f"{_named(args, index)}: the results dir is outside every mount, so its files are lost with the container; {fix}"


def _named(args: list[str], index: int) -> str:
    """The argument as the user wrote it, with the option before it: `-e /home/alice/spec.txt`."""
    previous = args[index - 1] if index > 0 else ""
    if previous.startswith("-") and "=" not in previous and not args[index].startswith("-"):
        return f"{previous} {args[index]}"
    return args[index]

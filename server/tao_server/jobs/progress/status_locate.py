"""Where a job's status file is: named by `--status-file`, or in its results dir, seen on the host through its mounts.

TAO tasks write `status.json` into their results dir, or (TAO 5, one dir per action) one level
below it: `results/train/status.json`. The results dir comes from the job's arguments (`-r DIR`,
`--results_dir DIR`, Hydra's `results_dir=DIR`: path_args.py reads them as the path check does),
else from the top-level `results_dir:` of the YAML spec given with `-e`, read from the host
through the mounts (bounded, never through a link). Each container path is then mapped through
the job's mounts to the source the daemon reads.

What the daemon cannot see is said, not guessed at: a results dir outside every mount (its
files stay in the container), or on Slurm a mount on a filesystem the daemon's host does not
share with the nodes (`SharedFilesystem`).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass

from tao_server.access import beneath
from tao_server.access.paths import within
from tao_server.errors import UnsafeFile
from tao_server.jobs import path_args
from tao_server.models import Job

STATUS_FILE = "status.json"
MAX_SPEC_BYTES = 1024 * 1024
_SPEC_RESULTS_DIR = re.compile(r"results_dir\s*:\s*(['\"]?)(/[^'\"#]*?)\1\s*(?:#.*)?")
# Filesystems the nodes of a cluster share with its login host, as /proc/self/mountinfo names them.
NETWORK_FILESYSTEMS = ("nfs", "nfs4", "lustre", "gpfs", "ceph", "cifs", "smb3", "beegfs", "glusterfs", "afs", "9p", "virtiofs", "fuse.")

# Why a host path is not what a job's run sees there (a Slurm node's own disk); None when it is.
Visibility = Callable[[str], str | None]


@dataclass(frozen=True)
class Place:
    """Where the status file may be: a dir to look in and one level below, or (`exact`) the file itself."""

    shown: str  # as the container sees it
    source: str  # the mount's source on the host
    relative: str  # beneath the source ("" for the source itself)
    exact: bool = False

    def file(self, subdirectory: str | None = None) -> tuple[str, str]:
        """(as the container sees it, beneath the source) of the status file here, or in `subdirectory`."""
        if self.exact:
            return self.shown, self.relative
        parts = [part for part in (subdirectory, STATUS_FILE) if part]
        return posixpath.join(self.shown, *parts), posixpath.join(self.relative, *parts)


@dataclass(frozen=True)
class Located:
    places: list[Place]
    unavailable: str | None = None  # why none of them can be followed


def locate(job: Job, owner: int | None, visible: Visibility | None = None) -> Located | None:
    """Where to follow the job's status file; None for a job that names neither a status file nor a results dir."""
    if job.status_file:
        wanted = [(posixpath.normpath(job.status_file), True)]
    else:
        dirs = path_args.results_dirs(job.args, job.subtask) or _spec_results_dirs(job, owner)
        wanted = [(path, False) for path in dirs]
    if not wanted:
        return None
    places, outside = [], []
    for path, exact in wanted:
        found = path_args.on_host(path, job.mounts)
        if found is None:
            outside.append(path)
        else:
            places.append(Place(path, found.source, found.relative, exact))
    if not places:
        what = "--status-file" if job.status_file else "the results dir"
        return Located([], f"{what} {', '.join(outside)} is outside every mount: the status file stays inside the container")
    if visible is not None:
        unseen = [reason for place in places if (reason := visible(place.source)) is not None]
        if len(unseen) == len(places):
            return Located([], unseen[0])
    return Located(places)


def _spec_results_dirs(job: Job, owner: int | None) -> list[str]:
    """The top-level `results_dir` of each spec file the job gives (-e), where the daemon can read it."""
    found = []
    for spec in path_args.spec_files(job.args, job.subtask):
        where = path_args.on_host(spec, job.mounts)
        text = _read_spec(where.source, where.relative, owner) if where is not None and where.relative else None
        if text is not None and (results := spec_results_dir(text)) is not None:
            found.append(results)
    return found


def spec_results_dir(text: str) -> str | None:
    """The absolute `results_dir:` at the top level of a YAML spec (no interpolation); None when it has none."""
    for line in text.splitlines():
        if line.startswith("results_dir") and (match := _SPEC_RESULTS_DIR.fullmatch(line.rstrip())) is not None:
            value = match.group(2).strip()
            return posixpath.normpath(value) if value and "${" not in value else None
    return None


def _read_spec(source: str, relative: str, owner: int | None) -> str | None:
    """The spec's first MAX_SPEC_BYTES as text; None when it cannot (or must not) be read."""
    try:
        root = beneath.open_root(source)
        try:
            fd = beneath.open_file(root, relative, owner, shared=True)
        finally:
            os.close(root)
        try:
            data = os.read(fd, MAX_SPEC_BYTES)
        finally:
            os.close(fd)
    except (OSError, UnsafeFile):
        return None
    return data.decode("utf-8", "replace")


class SharedFilesystem:
    """On a cluster: is a host path on storage the nodes share (the batch scripts' shared dir's, or a network filesystem)?"""

    def __init__(self, shared_dir: str, mountinfo: str = "/proc/self/mountinfo") -> None:
        self._shared_dir = shared_dir
        self._mountinfo = mountinfo

    def __call__(self, path: str) -> str | None:
        try:
            if os.stat(path).st_dev == os.stat(self._shared_dir).st_dev:
                return None
        except OSError as exc:
            return f"{path} cannot be looked at from the daemon's host ({exc.strerror})"
        kind = self.filesystem(path)
        if kind is not None and kind.startswith(NETWORK_FILESYSTEMS):
            return None
        return (
            f"{path} is on a filesystem of the daemon's host ({kind or 'unknown'}) that the nodes do not share, "
            f"as they share {self._shared_dir}: the status file the task writes on its node is not seen here"
        )

    def filesystem(self, path: str) -> str | None:
        """The type of the filesystem `path` lies on (the innermost mount point holding it), from mountinfo."""
        real = os.path.realpath(path)
        best: tuple[int, str] | None = None
        try:
            with open(self._mountinfo) as mounts:
                for line in mounts:
                    fields = line.split(" - ", 1)
                    point = fields[0].split()[4].replace("\\040", " ") if len(fields[0].split()) > 4 else ""
                    if len(fields) == 2 and within(real, point) and (best is None or len(point) > best[0]):
                        best = (len(point), fields[1].split()[0])
        except OSError:
            return None
        return best[1] if best is not None else None

"""Bind mounts pinned to the directory that was checked, for jobs of users who are not admins.

A user owns the directories on their mount paths and can swap one for a symlink at any moment:
between the checks at submission and the engine resolving the path when the container starts,
a swap would lead the mount anywhere. So, just before the container is created, the daemon opens
each source (O_PATH), checks that the opened object still sits at the checked path, and
bind-mounts that very object onto a root-owned staging path in its data dir. The engine gets the
staging path, which no user can touch. Once the container has started (it holds its own copy of
the mount), the staging mounts are detached.

The engine must see the daemon's mounts: each pin is looked up through the engine's own root
(/proc/ENGINE_PID/root) and a job whose pin the engine cannot see fails instead of running
without its data (tao-server sandboxed by systemd into a mount namespace of its own, say).

This needs root with CAP_SYS_ADMIN and a local engine whose pid this daemon can see. A daemon in
a container (docker-compose.yml) has neither, as a daemon running as a plain user has no root: it
checks that each source still resolves to the checked path right before the container is
created, which leaves a window of milliseconds (README.md, "Run as a service").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from pathlib import Path
from typing import Any

from tao_server.errors import LaunchFailure

log = logging.getLogger(__name__)

_MS_BIND = 0x1000
_MS_REC = 0x4000  # submounts too (an NFS mount under the source), as Docker's own binds do
_MNT_DETACH = 0x2
_CAP_SYS_ADMIN = 21


class MountPins:
    def __init__(self, stage_dir: Path | None, engine_pid: int | None = None) -> None:
        """Pins under `stage_dir`, checked from the engine's side (root and a local engine only); else checks paths."""
        self.enabled = stage_dir is not None and engine_pid is not None and os.geteuid() == 0 and _may_mount()
        self.stage_dir = stage_dir if self.enabled else None
        self.engine_root = f"/proc/{engine_pid}/root"
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if self.enabled else None

    def prepare(self, job_id: str, mounts: list[dict[str, Any]], confined: bool) -> list[dict[str, Any]]:
        """The mounts to give the engine: pinned for a confined job when the daemon can, else checked unchanged."""
        if confined and self.stage_dir is not None and mounts:
            return self._pin(self.stage_dir / job_id, mounts)
        for index, mount in enumerate(mounts):
            _check_unchanged(index, mount["source"], os.path.realpath(mount["source"]))
        return mounts

    def _pin(self, job_dir: Path, mounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`mounts` with each source replaced by a staging path bound to the checked object."""
        job_id = job_dir.name
        self.release(job_id)
        job_dir.mkdir(parents=True, mode=0o700)
        pinned = []
        try:
            for index, mount in enumerate(mounts):
                pinned.append({**mount, "source": self._pin_one(index, mount["source"], job_dir / str(index))})
        except BaseException:
            self.release(job_id)
            raise
        return pinned

    def release(self, job_id: str) -> None:
        """Detach the job's staging mounts, which the started container no longer needs."""
        if self.stage_dir is None:
            return
        job_dir = self.stage_dir / job_id
        if not job_dir.exists():
            return
        for entry in job_dir.iterdir():
            self._detach(entry)
            try:
                # rmdir and unlink, never a recursive delete: a mount still attached must not lose the user's files.
                entry.rmdir() if entry.is_dir() else entry.unlink()
            except OSError as exc:
                log.warning("staging path %s stays: %s", entry, exc.strerror)
        try:
            job_dir.rmdir()
        except OSError:
            pass

    def sweep(self) -> None:
        """Detach staging mounts left by a daemon that stopped between pinning and starting."""
        if self.stage_dir is None or not self.stage_dir.exists():
            return
        for job_dir in self.stage_dir.iterdir():
            self.release(job_dir.name)

    def _pin_one(self, index: int, source: str, target: Path) -> str:
        try:
            fd = os.open(source, os.O_PATH | os.O_CLOEXEC)
        except OSError as exc:
            raise LaunchFailure(f"Mounts[{index}].source: {source!r} cannot be opened any more ({exc.strerror})") from None
        try:
            _check_unchanged(index, source, os.readlink(f"/proc/self/fd/{fd}"))
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                target.mkdir(mode=0o700)
            else:
                target.touch(mode=0o600)
            self._call("mount", f"/proc/self/fd/{fd}".encode(), str(target).encode(), None, _MS_BIND | _MS_REC, None)
            self._check_engine_sees(target, os.fstat(fd))
        finally:
            os.close(fd)
        return str(target)

    def _check_engine_sees(self, target: Path, pinned: os.stat_result) -> None:
        try:
            seen = os.stat(f"{self.engine_root}{target}")
        except OSError:
            seen = None
        if seen is None or (seen.st_dev, seen.st_ino) != (pinned.st_dev, pinned.st_ino):
            raise LaunchFailure(
                "the Docker engine cannot see the daemon's staging mounts, so the job's mounts cannot be pinned: "
                "run tao-server in the host's mount namespace (no systemd PrivateTmp/ProtectSystem sandboxing)"
            )

    def _detach(self, target: Path) -> None:
        if self._libc is None:
            return
        if self._libc.umount2(str(target).encode(), _MNT_DETACH) != 0:
            error = ctypes.get_errno()
            if error != 22:  # EINVAL: not a mount point (pinning failed before mounting it)
                log.warning("cannot detach staging mount %s: %s", target, os.strerror(error))

    def _call(self, name: str, *args: Any) -> None:
        if getattr(self._libc, name)(*args) != 0:
            error = ctypes.get_errno()
            raise LaunchFailure(f"cannot pin the job's mounts ({name}: {os.strerror(error)})")


def _may_mount() -> bool:
    """Whether this process holds CAP_SYS_ADMIN, which mount(2) needs (a container's root lacks it)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) & (1 << _CAP_SYS_ADMIN))
    except OSError:
        pass
    return False


def _check_unchanged(index: int, checked: str, now: str) -> None:
    if now != checked:
        raise LaunchFailure(
            f"Mounts[{index}].source: {checked!r} now leads to {now!r}; it changed after the job was "
            "submitted, so the job was not started; submit it again"
        )

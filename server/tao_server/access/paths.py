"""Host paths no job may mount, and the small path and address rules the access checks share."""

from __future__ import annotations

import ipaddress
import os


class ProtectedPaths:
    """Host paths no job may mount: the system's, the engine's and the daemon's own.

    Sources are resolved (symlinks followed) before the check, and the resolved path is what the
    container gets, so a link cannot lead a mount into one of these. For users who are not admins,
    a source that contains one of them (/run holds the engine's sockets, /var its data) is refused too.

    A daemon in a container sees the host's filesystem only under the trees bind-mounted into it at
    the same paths (`host_trees`, from TAO_HOST_PATHS): a source anywhere else is refused, since
    what the daemon would check there (its own files) is not what the engine would mount (the host's).
    """

    SYSTEM_TREES = ("/etc", "/proc", "/sys", "/dev", "/boot")
    ENGINE_TREES = ("/run/docker", "/run/containerd", "/var/lib/containerd")
    ENGINE_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")

    def __init__(
        self, extra_trees: tuple[str, ...] = (), extra_files: tuple[str, ...] = (), host_trees: tuple[str, ...] | None = None
    ) -> None:
        self.host_trees = host_trees  # None: the daemon sees the host's whole filesystem
        files = (*self.ENGINE_SOCKETS, *extra_files)
        self.exact = {"/", *files, *(os.path.realpath(p) for p in files)}
        trees = (*self.SYSTEM_TREES, *self.ENGINE_TREES, *extra_trees)
        self.trees = tuple(dict.fromkeys(os.path.realpath(p) for p in trees))
        self._inner = sorted({*self.trees, *self.exact} - {"/"})

    def refusal(self, real: str) -> str | None:
        if real in self.exact:
            return f"is {real}, which jobs may not mount"
        for tree in self.trees:
            if within(real, tree):
                return f"is inside {tree}, which jobs may not mount (system, Docker engine and daemon paths are refused)"
        return None

    def unseen(self, path: str) -> str | None:
        """Why the daemon cannot judge `path` (absolute, normalised) as the host sees it; None when it can."""
        if self.host_trees is None or any(within(path, tree) for tree in self.host_trees):
            return None
        return (
            f"is outside the host paths the daemon's container sees ({', '.join(self.host_trees)}); "
            "the admin can mount another host tree into it at the same path and add it to TAO_HOST_PATHS"
        )

    def contained(self, real: str) -> str | None:
        """A protected path inside `real`, which mounting `real` would expose; None when there is none."""
        for path in self._inner:
            if path != real and within(path, real):
                return path
        return None


def within(path: str, tree: str) -> bool:
    """Whether `path` is `tree` or lies under it (both resolved)."""
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def is_loopback(host: str) -> bool:
    """Whether an address (or "localhost") reaches only this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

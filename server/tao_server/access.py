"""Who may see and stop which jobs.

Callers on the Unix socket are known by the kernel (SO_PEERCRED): each sees, follows and stops
only the jobs they submitted; the daemon's own user and root see and stop all. TCP carries no
identity yet (it is loopback-only unless the daemon runs with --insecure), so it is trusted as
the daemon's user.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from tao_server.models import Job


@dataclass(frozen=True)
class Caller:
    uid: int | None
    gid: int | None
    admin: bool

    def may_see(self, job: Job) -> bool:
        return self.admin or job.owner_uid == self.uid


DAEMON = Caller(uid=None, gid=None, admin=True)  # the daemon itself, and callers without an identity


def caller_from_peer(peer: tuple[int, int] | None) -> Caller:
    if peer is None:
        return DAEMON
    uid, gid = peer
    return Caller(uid=uid, gid=gid, admin=uid in (0, os.getuid()))

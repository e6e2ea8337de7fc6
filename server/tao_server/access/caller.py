"""Who is calling, and which jobs they may see and stop.

On the Unix socket the kernel names the caller (SO_PEERCRED, SO_PEERGROUPS: see peer.py); over
TCP a bearer token does (tokens.py). Each caller sees, follows and stops only the jobs they
submitted; admins (root, the daemon's own user, admin tokens) see and stop all. A scrape token's
caller (`scrape_only`) is no account: it may read GET /metrics and sees no job.
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
    groups: tuple[int, ...] = ()  # supplementary groups
    name: str | None = None  # a token's user name; local callers are named by their uid
    scrape_only: bool = False  # a scrape token: GET /metrics, nothing else (api/deps.py refuses it elsewhere)

    def may_see(self, job: Job) -> bool:
        return not self.scrape_only and (self.admin or job.owner_uid == self.uid)

    @property
    def all_groups(self) -> tuple[int, ...]:
        return tuple(dict.fromkeys(([self.gid] if self.gid is not None else []) + list(self.groups)))

    def describe(self) -> str:
        """How messages name the caller: "uid 1001 (alice)"."""
        if self.uid is None:
            return "the daemon"
        name = self.name or user_name_of(self.uid)
        return f"uid {self.uid}" + (f" ({name})" if name else "")


DAEMON = Caller(uid=None, gid=None, admin=True)  # the daemon itself


def caller_from_peer(peer: tuple[int, int, tuple[int, ...]]) -> Caller:
    uid, gid, groups = peer
    return Caller(uid=uid, gid=gid, admin=uid in (0, os.getuid()), groups=groups)


def owner_of(job: Job) -> Caller:
    """The job's submitter as a caller: what it may do, and whose logins its pull uses."""
    if job.owner_uid is None or job.owner_gid is None:
        return DAEMON
    return caller_from_peer((job.owner_uid, job.owner_gid, ()))


def user_name_of(uid: int | None) -> str | None:
    """The local account name of `uid`; None for no uid or one without an account."""
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name if uid is not None else None
    except KeyError:
        return None

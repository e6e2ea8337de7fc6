"""Browser sessions for local users: a one-time link, redeemed once, for a short-lived cookie bound to its caller.

`tao ui` asks for a link over the Unix socket, where the kernel names the caller; the link's
code is good once and for a minute, so a replayed link opens nothing, and only by the account it
was made for: the redeemer is named as every caller is (the Unix socket's peer, or the owner of
the loopback connection: access/tcp_peer.py), so a code read by another local user opens nothing
either. The session it opens acts as that caller and lasts a few hours. Both live in memory: a
restarted daemon forgets them, and `tao ui` makes a new one.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tao_server.access.caller import Caller
from tao_server.errors import LinkNotYours, Unauthorized

LINK_SECONDS = 60.0
SESSION_SECONDS = 8 * 3600.0
COOKIE = "tao_ui_session"


@dataclass(frozen=True)
class _Grant:
    caller: Caller
    expires: float


class UiSessions:
    """One-time link codes and the sessions they open, each bound to one caller."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._links: dict[str, _Grant] = {}
        self._sessions: dict[str, _Grant] = {}

    def new_link(self, caller: Caller) -> str:
        """A code that opens one session as `caller`, once, within LINK_SECONDS."""
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._expire()
            self._links[code] = _Grant(caller, self._clock() + LINK_SECONDS)
        return code

    def redeem(self, code: str, redeemer_uid: int | None) -> str:
        """The id of a new session for the code's caller, redeemed by that caller's account.

        Unauthorized for a used, expired or unknown code; LinkNotYours when `redeemer_uid` (None: the
        daemon cannot tell who redeems) is not the account the code was made for. The code then stays
        good for its own user: another account trying it first takes nothing from them.
        """
        with self._lock:
            self._expire()
            grant = self._links.get(code)
            if grant is None:
                raise Unauthorized("this dashboard link was already used or has expired: run `tao ui` again", field="code")
            if redeemer_uid is None or redeemer_uid != grant.caller.uid:
                raise LinkNotYours(
                    "this dashboard link was made for another account: run `tao ui` as yourself"
                    if redeemer_uid is not None
                    else "the daemon cannot tell which account opens this link: open it from this machine's loopback",
                    field="code",
                )
            del self._links[code]
            session = secrets.token_urlsafe(32)
            self._sessions[session] = _Grant(grant.caller, self._clock() + SESSION_SECONDS)
        return session

    def caller_for(self, session: str) -> Caller | None:
        with self._lock:
            grant = self._sessions.get(session)
        return grant.caller if grant is not None and grant.expires > self._clock() else None

    def end(self, session: str) -> None:
        with self._lock:
            self._sessions.pop(session, None)

    def _expire(self) -> None:
        now = self._clock()
        for table in (self._links, self._sessions):
            for key in [key for key, grant in table.items() if grant.expires <= now]:
                del table[key]

"""Each user's default notification URLs and signing secret, in the daemon's database, by uid.

A secret is made once, by whichever comes first of `tao notify secret` and the user's first
delivery, and kept across restarts; it is read only for its owner and for signing.
"""

from __future__ import annotations

import time

from sqlalchemy import delete, insert
from sqlmodel import Session, col, select

from tao_server.jobs.store import JobStore
from tao_server.notify.notify_models import DefaultUrl, Secret
from tao_server.notify.signing import new_secret

_INSERT_SECRET_ONCE = insert(Secret.__table__).prefix_with("OR IGNORE")  # type: ignore[attr-defined]
_INSERT_URL_ONCE = insert(DefaultUrl.__table__).prefix_with("OR IGNORE")  # type: ignore[attr-defined]


class Preferences:
    def __init__(self, store: JobStore) -> None:
        self._store = store
        self._engine = store.engine

    def urls(self, uid: int) -> list[str]:
        """The user's default URLs, in the order they were added."""
        query = select(DefaultUrl.url).where(col(DefaultUrl.owner_uid) == uid).order_by(col(DefaultUrl.created_at))
        with Session(self._engine) as session:
            return list(session.exec(query).all())

    def add_url(self, uid: int, url: str) -> bool:
        """Add a default URL; False when the user has it already."""
        with self._store.writing(), self._engine.begin() as connection:
            return bool(connection.execute(_INSERT_URL_ONCE, {"owner_uid": uid, "url": url, "created_at": time.time()}).rowcount)

    def remove_url(self, uid: int, url: str) -> bool:
        """Remove a default URL; False when the user has no such one."""
        with self._store.writing(), self._engine.begin() as connection:
            removed = connection.execute(delete(DefaultUrl).where(col(DefaultUrl.owner_uid) == uid, col(DefaultUrl.url) == url))
            return bool(removed.rowcount)

    def secret(self, uid: int) -> str:
        """The user's signing secret, made now if they have none (two callers at once get the same one)."""
        found = self._find_secret(uid)
        if found is not None:
            return found
        with self._store.writing(), self._engine.begin() as connection:
            connection.execute(_INSERT_SECRET_ONCE, {"owner_uid": uid, "secret": new_secret(), "created_at": time.time()})
        made = self._find_secret(uid)
        if made is None:  # the insert above committed, or another's did: a row is there
            raise RuntimeError(f"the signing secret of uid {uid} was stored but cannot be read back")
        return made

    def _find_secret(self, uid: int) -> str | None:
        with Session(self._engine) as session:
            return session.exec(select(Secret.secret).where(col(Secret.owner_uid) == uid)).first()

"""Bearer tokens: how TCP callers say who they are.

A token reads `tao_<id>_<secret>`. The table keeps the id, the account it acts as and the secret's
SHA-256; the secret itself is printed once by `tao-server token create` and never stored. The
secret has 256 random bits, so a plain hash is enough: there is nothing to brute-force.

A scrape token (`tao-server token create --scrape`) acts as no account: its caller may read
GET /metrics and nothing else, for a Prometheus server's bearer token file.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pwd
import secrets

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from tao_server.access.caller import Caller
from tao_server.models import ApiToken

PREFIX = "tao_"


class TokenStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(self, user: str, uid: int, gid: int, admin: bool = False) -> tuple[ApiToken, str]:
        """The new token's row and its text, which is shown once and not kept."""
        return self._create(ApiToken(id=secrets.token_hex(6), user=user, uid=uid, gid=gid, admin=admin, secret_sha256=""))

    def create_scrape(self, name: str) -> tuple[ApiToken, str]:
        """A token that reads GET /metrics and nothing else, acting as no account; `name` says whose scraper it is."""
        return self._create(ApiToken(id=secrets.token_hex(6), user=name, uid=None, gid=None, scope="scrape", secret_sha256=""))

    def _create(self, token: ApiToken) -> tuple[ApiToken, str]:
        secret = secrets.token_urlsafe(32)
        token.secret_sha256 = _digest(secret)
        with Session(self._engine) as session:
            session.add(token)
            session.commit()
            session.refresh(token)
        return token, f"{PREFIX}{token.id}_{secret}"

    def list(self) -> list[ApiToken]:
        with Session(self._engine) as session:
            return list(session.exec(select(ApiToken).order_by(col(ApiToken.created_at))))

    def revoke(self, token_id: str) -> bool:
        with Session(self._engine) as session:
            token = session.get(ApiToken, token_id)
            if token is None:
                return False
            session.delete(token)
            session.commit()
            return True

    def named(self, uid: int) -> Caller | None:
        """The caller tokens of `uid` act as (the first made), without admin rights; None when no token has that uid.

        For what a user who has no local account may do when they are not calling: their job's notifications.
        """
        query = select(ApiToken).where(col(ApiToken.uid) == uid, col(ApiToken.scope) == "api").order_by(col(ApiToken.created_at)).limit(1)
        with Session(self._engine) as session:
            token = session.exec(query).first()
        if token is None or token.gid is None:
            return None
        return Caller(uid=uid, gid=token.gid, admin=False, groups=_local_groups(token.user, uid, token.gid), name=token.user)

    def caller_for(self, text: str) -> Caller | None:
        """The caller a presented token acts as; None for a malformed, unknown or revoked one."""
        if not text.startswith(PREFIX):
            return None
        token_id, _, secret = text[len(PREFIX) :].partition("_")
        if not token_id or not secret:
            return None
        with Session(self._engine) as session:
            token = session.get(ApiToken, token_id)
        if token is None or not hmac.compare_digest(token.secret_sha256, _digest(secret)):
            return None
        if token.scope != "api" or token.uid is None or token.gid is None:
            return Caller(uid=None, gid=None, admin=False, name=token.user, scrape_only=True)
        return Caller(
            uid=token.uid, gid=token.gid, admin=token.admin, groups=_local_groups(token.user, token.uid, token.gid), name=token.user
        )


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _local_groups(user: str, uid: int, gid: int) -> tuple[int, ...]:
    """The supplementary groups of the local account the token names, if the token acts as that very account."""
    try:
        if pwd.getpwnam(user).pw_uid != uid:
            return ()  # a remote user who shares a name with a local account gets none of its groups
        return tuple(os.getgrouplist(user, gid))
    except (KeyError, OSError):
        return ()

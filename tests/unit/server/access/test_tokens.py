"""Bearer tokens (tao_server.tokens) on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tao_server import db
from tao_server.access.tokens import TokenStore


@pytest.fixture
def tokens(tmp_path: Path) -> TokenStore:
    engine = db.make_engine(tmp_path / "tao.db")
    db.upgrade(engine)
    return TokenStore(engine)


def test_a_token_names_its_caller_and_only_its_hash_is_stored(tokens: TokenStore, tmp_path: Path):
    row, text = tokens.create("alice", 1001, 1001)
    caller = tokens.caller_for(text)
    assert caller is not None
    assert (caller.uid, caller.gid, caller.admin, caller.name) == (1001, 1001, False, "alice")
    assert text.startswith(f"tao_{row.id}_")
    secret = text.split("_", 2)[2]
    assert secret not in row.secret_sha256
    assert secret.encode() not in b"".join(p.read_bytes() for p in tmp_path.iterdir())


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
        lambda t: t[4:],
        lambda t: "tao_",
        lambda t: t.split("_", 2)[0] + "_" + t.split("_", 2)[1],
    ],
)
def test_a_wrong_token_names_nobody(tokens: TokenStore, mangle):  # type: ignore[no-untyped-def]
    _, text = tokens.create("alice", 1001, 1001)
    assert tokens.caller_for(mangle(text)) is None


def test_revoke_and_list(tokens: TokenStore):
    first, first_text = tokens.create("alice", 1001, 1001)
    second, _ = tokens.create("ops", 0, 0, admin=True)
    assert [t.id for t in tokens.list()] == [first.id, second.id]
    assert tokens.revoke(first.id)
    assert not tokens.revoke(first.id)
    assert tokens.caller_for(first_text) is None
    assert [t.id for t in tokens.list()] == [second.id]


def test_a_scrape_token_acts_as_no_account_and_may_see_no_job(tokens: TokenStore):
    from tao_server.models import Job

    row, text = tokens.create_scrape("prometheus")
    assert (row.scope, row.uid, row.gid, row.admin) == ("scrape", None, None, False)
    caller = tokens.caller_for(text)
    assert caller is not None
    assert (caller.scrape_only, caller.uid, caller.gid, caller.admin, caller.groups, caller.name) == (
        True,
        None,
        None,
        False,
        (),
        "prometheus",
    )
    # Not even the daemon's own jobs (owner None), which a caller of uid None would otherwise match.
    assert not caller.may_see(Job(id="j", task="t", image="i", owner_uid=None))


def test_a_scrape_token_never_stands_for_a_user_who_is_not_calling(tokens: TokenStore):
    tokens.create_scrape("prometheus")
    assert tokens.named(1001) is None
    tokens.create("alice", 1001, 1001)
    named = tokens.named(1001)
    assert named is not None and (named.name, named.scrape_only) == ("alice", False)

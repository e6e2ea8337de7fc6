"""Registry logins per user: isolation by uid, the fallback order for pulls, the file (tao_server.credentials)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from tao_server.access.caller import DAEMON, Caller
from tao_server.errors import CredentialFileUnreadable
from tao_server.images.registry_logins import CredentialStore, login_owner

REGISTRY = "127.0.0.1:5000"
ALICE, BOB = 1001, 1002


@pytest.fixture
def store(tmp_path):
    return CredentialStore(tmp_path / "credentials.json")


def test_a_users_logins_are_theirs_alone(store: CredentialStore) -> None:
    store.save(ALICE, REGISTRY, "alice", "alice-secret")
    assert store.registries(ALICE) == [(REGISTRY, "alice")]
    assert store.registries(BOB) == []
    assert store.registries(None) == []
    assert store.login_for(BOB, REGISTRY) is None
    assert store.remove(BOB, REGISTRY) is None
    assert store.login_for(ALICE, REGISTRY).password == "alice-secret"  # type: ignore[union-attr]


def test_each_user_pulls_with_their_own_login(store: CredentialStore) -> None:
    store.save(ALICE, REGISTRY, "alice", "alice-secret")
    store.save(BOB, REGISTRY, "bob", "bob-secret")
    store.save(None, REGISTRY, "box", "box-secret")
    alice, bob = store.login_for(ALICE, REGISTRY), store.login_for(BOB, REGISTRY)
    assert alice is not None and alice.pair() == ("alice", "alice-secret")
    assert bob is not None and bob.pair() == ("bob", "bob-secret")
    assert alice.source != bob.source


def test_fallback_order_user_then_daemon_then_ngc_key_then_none(tmp_path) -> None:
    store = CredentialStore(tmp_path / "credentials.json", ngc_api_key="ngc-key")
    for registry in (REGISTRY, "nvcr.io"):
        store.save(ALICE, registry, "alice", "alice-secret")
        store.save(None, registry, "box", "box-secret")

    assert store.login_for(ALICE, "nvcr.io").username == "alice"  # type: ignore[union-attr]
    store.remove(ALICE, "nvcr.io")
    assert store.login_for(ALICE, "nvcr.io").username == "box"  # type: ignore[union-attr]
    store.remove(None, "nvcr.io")
    ngc = store.login_for(ALICE, "nvcr.io")
    assert ngc is not None and ngc.pair() == ("$oauthtoken", "ngc-key")
    assert ngc.source == "NGC_API_KEY"

    assert store.login_for(BOB, REGISTRY).username == "box"  # type: ignore[union-attr]
    store.remove(None, REGISTRY)
    assert store.login_for(BOB, REGISTRY) is None  # the engine client's Docker config is next
    assert store.login_for(ALICE, REGISTRY).username == "alice"  # type: ignore[union-attr]


def test_the_source_names_whose_login_and_never_the_secret(store: CredentialStore) -> None:
    store.save(ALICE, REGISTRY, "alice", "alice-secret")
    store.save(None, "other:5000", "box", "box-secret")
    own, shared = store.login_for(ALICE, REGISTRY), store.login_for(ALICE, "other:5000")
    assert own is not None and shared is not None
    assert "1001" in own.source and "daemon" in shared.source
    assert "alice-secret" not in repr(own) and "box-secret" not in repr(shared)


def test_the_daemon_root_and_the_daemons_user_share_the_daemons_logins() -> None:
    assert login_owner(DAEMON) is None
    assert login_owner(Caller(uid=0, gid=0, admin=True)) is None
    assert login_owner(Caller(uid=os.getuid(), gid=os.getgid(), admin=True)) is None
    assert login_owner(Caller(uid=ALICE, gid=ALICE, admin=False)) == ALICE


def test_a_file_from_before_per_user_logins_holds_the_daemons_logins(store: CredentialStore) -> None:
    store.path.write_text(json.dumps({REGISTRY: {"username": "box", "password": "box-secret"}}))
    assert store.registries(None) == [(REGISTRY, "box")]
    assert store.registries(ALICE) == []
    assert store.login_for(ALICE, REGISTRY).username == "box"  # type: ignore[union-attr]

    store.save(ALICE, REGISTRY, "alice", "alice-secret")  # rewrites the file in the current format
    written = json.loads(store.path.read_text())
    assert written == {
        "version": 2,
        "users": {
            "1001": {REGISTRY: {"username": "alice", "password": "alice-secret"}},
            "daemon": {REGISTRY: {"username": "box", "password": "box-secret"}},
        },
    }


def test_the_file_is_private_to_the_daemons_user(store: CredentialStore) -> None:
    store.path.with_suffix(".tmp").write_text("left behind")
    store.path.with_suffix(".tmp").chmod(0o644)
    store.save(ALICE, REGISTRY, "alice", "alice-secret")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    store.remove(ALICE, REGISTRY)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert json.loads(store.path.read_text()) == {"version": 2, "users": {}}


def test_an_unreadable_file_names_itself_and_what_to_do(store: CredentialStore) -> None:
    store.path.write_text("{not json")
    with pytest.raises(CredentialFileUnreadable, match=r"credentials\.json is not JSON.*remove it"):
        store.login_for(ALICE, REGISTRY)
    store.path.write_text(json.dumps({"version": 3, "users": {}}))
    with pytest.raises(CredentialFileUnreadable, match="format version 3"):
        store.registries(ALICE)

"""Registry credentials: each user's logins from `tao login`, the daemon's shared ones, NGC_API_KEY for nvcr.io.

Logins belong to whoever stored them, by uid. Those of the daemon itself, root and the daemon's
user are the daemon's own: the box's shared logins, used for the jobs of anyone without a login of
their own for that registry. Stored in the data dir (mode 0600), used for pulls only; never
returned by the API, never logged, never written to a job row. Without any login, the engine
client falls back to the daemon user's ~/.docker/config.json (auths and credential helpers).

The file: {"version": 2, "users": {"1001": {REGISTRY: {"username", "password"}}, "daemon": {...}}}.
A file from before per-user logins maps registries to logins directly; those are the daemon's.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tao_server.access.caller import Caller
from tao_server.errors import CredentialFileUnreadable, StorageFull
from tao_server.runtime import disk

NGC_REGISTRY = "nvcr.io"
NGC_USERNAME = "$oauthtoken"
FORMAT_VERSION = 2
DAEMON_KEY = "daemon"

Logins = dict[str, dict[str, str]]  # registry -> {"username", "password"}


@dataclass(frozen=True)
class RegistryLogin:
    """A login to pull with. `source` names whose it is and may be logged; the password stays out of reprs."""

    source: str
    username: str
    password: str = field(repr=False)

    def pair(self) -> tuple[str, str]:
        return self.username, self.password


def login_owner(caller: Caller) -> int | None:
    """Whose logins `caller` acts on: their uid, or None for the daemon's own (the daemon, root, the daemon's user)."""
    return None if caller.admin or caller.uid is None else caller.uid


def describe_owner(owner: int | None) -> str:
    return "the daemon" if owner is None else f"uid {owner}"


class CredentialStore:
    def __init__(self, path: Path, ngc_api_key: str | None = None) -> None:
        self.path = path
        self._ngc_api_key = ngc_api_key  # the daemon's NGC_API_KEY: nvcr.io's login of last resort
        self._lock = threading.Lock()

    def save(self, owner: int | None, registry: str, username: str, password: str) -> None:
        with self._lock:
            users = self._read()
            users.setdefault(_key(owner), {})[registry] = {"username": username, "password": password}
            self._write(users)

    def remove(self, owner: int | None, registry: str) -> str | None:
        """Forget `owner`'s login for `registry`; the username it had, None when there was none."""
        with self._lock:
            users = self._read()
            logins = users.get(_key(owner), {})
            removed = logins.pop(registry, None)
            if not logins:
                users.pop(_key(owner), None)
            self._write(users)
        return removed["username"] if removed is not None else None

    def registries(self, owner: int | None) -> list[tuple[str, str]]:
        """(registry, username) of each login `owner` stored; never another's, nor the daemon's for a user."""
        with self._lock:
            logins = self._read().get(_key(owner), {})
        return sorted((registry, login["username"]) for registry, login in logins.items())

    def login_for(self, owner: int | None, registry: str) -> RegistryLogin | None:
        """The login a pull for `owner` uses: theirs, else the daemon's, else NGC_API_KEY for nvcr.io.

        None lets the engine client use the daemon user's Docker config.
        """
        with self._lock:
            users = self._read()
        for candidate in dict.fromkeys((owner, None)):
            login = users.get(_key(candidate), {}).get(registry)
            if login is not None:
                return RegistryLogin(f"the login of {describe_owner(candidate)}", login["username"], login["password"])
        if registry == NGC_REGISTRY and self._ngc_api_key:
            return RegistryLogin("NGC_API_KEY", NGC_USERNAME, self._ngc_api_key)
        return None

    def _read(self) -> dict[str, Logins]:
        try:
            stored = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as exc:
            raise CredentialFileUnreadable(
                f"{self.path} is not JSON ({exc}); fix or remove it, then log in again with `tao login`"
            ) from None
        if "version" not in stored:
            return {DAEMON_KEY: stored} if stored else {}  # the flat file of a daemon before per-user logins
        if stored["version"] != FORMAT_VERSION:
            raise CredentialFileUnreadable(
                f"{self.path} has format version {stored['version']}, this tao-server reads {FORMAT_VERSION}; "
                "run the tao-server that wrote it, or remove the file and log in again"
            )
        return stored["users"]

    def _write(self, users: dict[str, Logins]) -> None:
        temporary = self.path.with_suffix(".tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)  # a temporary file left behind keeps its mode; the secrets must not
            with os.fdopen(fd, "w") as file:
                json.dump({"version": FORMAT_VERSION, "users": users}, file, indent=2, sort_keys=True)
            os.replace(temporary, self.path)  # all or nothing: a full disk leaves the old file whole
        except OSError as exc:
            raise StorageFull(f"cannot write the stored logins {self.path}: {exc.strerror}; {disk.advice(self.path, exc.errno)}") from None


def _key(owner: int | None) -> str:
    return DAEMON_KEY if owner is None else str(owner)

"""Registry credentials: logins users stored with `tao login`, NGC_API_KEY for nvcr.io.

Stored in the data dir (mode 0600), used for pulls only; never returned by the API, never logged,
never written to a job row. Without a stored login, the engine client falls back to the daemon
user's ~/.docker/config.json (auths and credential helpers).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

NGC_REGISTRY = "nvcr.io"
NGC_USERNAME = "$oauthtoken"


class CredentialStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def save(self, registry: str, username: str, password: str) -> None:
        with self._lock:
            logins = self._read()
            logins[registry] = {"username": username, "password": password}
            self._write(logins)

    def remove(self, registry: str) -> bool:
        with self._lock:
            logins = self._read()
            found = logins.pop(registry, None) is not None
            self._write(logins)
            return found

    def registries(self) -> list[tuple[str, str]]:
        """(registry, username) of each stored login."""
        with self._lock:
            return sorted((registry, login["username"]) for registry, login in self._read().items())

    def auth_for(self, registry: str) -> dict[str, str] | None:
        """The login to use for `registry`; None lets the engine client use the daemon user's Docker config."""
        with self._lock:
            login = self._read().get(registry)
        if login is not None:
            return {"username": login["username"], "password": login["password"]}
        if registry == NGC_REGISTRY and (key := os.environ.get("NGC_API_KEY")):
            return {"username": NGC_USERNAME, "password": key}
        return None

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def _write(self, logins: dict[str, dict[str, str]]) -> None:
        temporary = self.path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump(logins, file)
        os.replace(temporary, self.path)

"""Images: one pull for all the jobs that need an image at once with the same login, with progress for each of them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from tao_server.backends import ImageStore
from tao_server.errors import BackendError, BackendUnavailable, CredentialFileUnreadable, LaunchFailure
from tao_server.images.registry_logins import CredentialStore, RegistryLogin

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]


# The source of a pull without a stored login, beside RegistryLogin.source: pulls share by
# (image, source), and the daemon log names the source, never the secret.
_ENGINE_CONFIG = "the daemon user's Docker config"


class _Pull:
    def __init__(self, image: str, login: RegistryLogin | None) -> None:
        self.image = image
        self.login = login
        self.done = threading.Event()
        # Why it failed: the pull's own failure, or an outage (the waiting jobs wait it out and ask again).
        self.error: LaunchFailure | BackendUnavailable | None = None
        self.listeners: list[Progress] = []


class ImagePuller:
    """Shares a pull among everyone who asks for the same image with the same login while it runs.

    Sharing needs the same login too: a pull must never run with one user's login for another,
    nor fail for one user because another has no login. The pull runs in a thread of its own: a
    job that is cancelled stops waiting for it, but the pull goes on for the other jobs that need
    the image.
    """

    def __init__(self, images: ImageStore, credentials: CredentialStore) -> None:
        self._images = images
        self._credentials = credentials
        self._pulls: dict[tuple[str, str], _Pull] = {}
        self._lock = threading.Lock()

    def pull(self, image: str, owner: int | None, on_progress: Progress, stop_when: Callable[[], bool] = lambda: False) -> bool:
        """Wait until `image` is pulled with `owner`'s login (see CredentialStore.login_for).

        False when `stop_when()` turned true first. Raises the pull's failure.
        """
        login = self._login(image, owner)
        key = (image, login.source if login is not None else _ENGINE_CONFIG)
        with self._lock:
            pull = self._pulls.get(key)
            if pull is None:
                pull = self._pulls[key] = _Pull(image, login)
                threading.Thread(target=self._run, args=(pull, key), name=f"pull {image}", daemon=True).start()
            else:
                on_progress({"status": "waiting for the pull of this image that is already running"})
            pull.listeners.append(on_progress)
        while not pull.done.wait(0.1):
            if stop_when():
                with self._lock:
                    pull.listeners.remove(on_progress)
                return False
        if pull.error is not None:
            raise pull.error
        return True

    def _login(self, image: str, owner: int | None) -> RegistryLogin | None:
        try:
            return self._credentials.login_for(owner, self._images.registry_of(image))
        except CredentialFileUnreadable as exc:
            raise LaunchFailure(f"cannot pull {image}: {exc.message}") from None

    def _run(self, pull: _Pull, key: tuple[str, str]) -> None:
        started = time.monotonic()
        login = pull.login.pair() if pull.login is not None else None
        try:
            for event in self._images.pull(pull.image, login):
                with self._lock:
                    listeners = list(pull.listeners)
                for listener in listeners:
                    listener(event)
            log.info("pulled %s with %s in %.1f s", pull.image, key[1], time.monotonic() - started)
        except (LaunchFailure, BackendUnavailable) as failure:
            pull.error = failure
        except BackendError as exc:
            pull.error = LaunchFailure(exc.message)
        finally:
            with self._lock:
                del self._pulls[key]
            pull.done.set()


class ProgressRecorder:
    """Turns the engine's pull events into job events, at most a few a second per layer."""

    def __init__(self, append: Callable[[dict[str, Any]], None], image: str, interval: float = 0.5) -> None:
        self._append = append
        self._image = image
        self._interval = interval
        self._last: dict[str, tuple[str, float]] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        layer = event.get("id", "")
        status = event.get("status", "")
        detail = event.get("progressDetail") or {}
        now = time.monotonic()
        previous = self._last.get(layer)
        if previous is not None and previous[0] == status and now - previous[1] < self._interval:
            return
        self._last[layer] = (status, now)
        data: dict[str, Any] = {"image": self._image, "layer": layer, "status": status}
        if detail.get("total"):
            data.update(current=detail.get("current", 0), total=detail["total"])
        self._append(data)

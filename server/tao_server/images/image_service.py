"""The image service the routes call: the manifest's images on the backend, pulls ahead of time, logins."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator

from tao_server.access.caller import Caller
from tao_server.access.input_checks import check_text
from tao_server.backends import ImageStore, ImageSummary
from tao_server.errors import BackendError, InvalidRequest, LaunchFailure, PolicyRefusal
from tao_server.images.manifest import Manifest
from tao_server.images.puller import ImagePuller, ProgressRecorder
from tao_server.images.registry_logins import CredentialStore, describe_owner, login_owner
from tao_server.models import CredentialPublic, ImagePublic


class ImageService:
    def __init__(self, manifest: Manifest, images: ImageStore, puller: ImagePuller, credentials: CredentialStore) -> None:
        self._manifest = manifest
        self._images = images
        self._puller = puller
        self._credentials = credentials

    # -- images -----------------------------------------------------------------------------------

    def catalogue(self) -> list[ImagePublic]:
        """Every image the manifest uses: present on the backend or not, its size, digests and tasks."""
        listed = []
        for image in self._manifest.images():
            local = self.local(image.reference)
            listed.append(
                ImagePublic(
                    reference=image.reference,
                    registry=self._images.registry_of(image.reference),
                    tasks=self._manifest.tasks_of(image),
                    present=local is not None,
                    size=local.size if local else None,
                    id=local.id if local else None,
                    digests=local.digests if local else [],
                )
            )
        return listed

    def local(self, reference: str) -> ImageSummary | None:
        """The backend's copy of an image; None when absent, or when the backend cannot say."""
        try:
            return self._images.summary(reference)
        except BackendError:
            return None

    def pull_lines(self, caller: Caller, tasks: list[str], images: list[str]) -> Iterator[bytes]:
        """Pull the images of `tasks` (and `images`) with the caller's logins: progress as JSON lines.

        Each line is {"type": "progress", ...}, then {"type": "done", "image", "error"} per image.
        Checks everything before the first line, so a refusal is an HTTP error, not a line.
        """
        for name, values in (("tasks", tasks), ("images", images)):
            for index, value in enumerate(values):
                check_text(value, f"{name}[{index}]")
        known = {image.reference for image in self._manifest.images()}
        for index, image in enumerate(images):
            if not caller.admin and image not in known:
                raise PolicyRefusal(
                    f"images[{index}]: {image!r} is not an image of this daemon's manifest; users who are not admins may "
                    "pull only those (`tao images` lists them)",
                    field=f"images[{index}]",
                )
        references = [self._manifest.resolve(None, task).image.reference for task in tasks] + images
        if not references:
            raise InvalidRequest("name at least one task (or image) to pull", field="tasks")
        return self._pull_lines(list(dict.fromkeys(references)), login_owner(caller))

    def _pull_lines(self, references: list[str], owner: int | None) -> Iterator[bytes]:
        for reference in references:
            yield from self._pull_one(reference, owner)

    def _pull_one(self, reference: str, owner: int | None) -> Iterator[bytes]:
        """One image's pull, in a thread of its own, as progress lines and a last "done" line."""
        updates: queue.SimpleQueue[dict[str, object] | None] = queue.SimpleQueue()
        outcome: dict[str, str | None] = {"error": None}

        def pull() -> None:
            try:
                self._puller.pull(reference, owner, ProgressRecorder(updates.put, reference))
            except (LaunchFailure, BackendError) as failure:
                outcome["error"] = failure.message
            finally:
                updates.put(None)

        threading.Thread(target=pull, daemon=True).start()
        while (update := updates.get()) is not None:
            yield (json.dumps({"type": "progress", **update}) + "\n").encode()
        yield (json.dumps({"type": "done", "image": reference, "error": outcome["error"]}) + "\n").encode()

    # -- registry logins --------------------------------------------------------------------------

    def logins(self, caller: Caller) -> list[CredentialPublic]:
        """The caller's own logins: a user never sees another's, nor the daemon's shared ones."""
        owner = login_owner(caller)
        return [
            CredentialPublic(registry=registry, username=username, owner_uid=owner)
            for registry, username in self._credentials.registries(owner)
        ]

    def login(self, caller: Caller, registry: str, username: str, password: str) -> CredentialPublic:
        """Check the login with the registry, then keep it for the caller's pulls from that registry.

        The daemon's, root's and the daemon user's logins are the daemon's own: every job whose owner
        has no login for that registry pulls with them.
        """
        for name, value in (("registry", registry), ("username", username), ("password", password)):
            check_text(value, name)
        if not registry.strip() or "/" in registry.strip("/"):
            raise InvalidRequest(f"registry {registry!r} is not a registry host such as nvcr.io or 127.0.0.1:5000", field="registry")
        self._images.check_login(registry, username, password)
        owner = login_owner(caller)
        self._credentials.save(owner, registry, username, password)
        return CredentialPublic(registry=registry, username=username, owner_uid=owner)

    def logout(self, caller: Caller, registry: str) -> CredentialPublic:
        """Forget the caller's login for `registry`; answers with the login forgotten."""
        owner = login_owner(caller)
        username = self._credentials.remove(owner, registry)
        if username is None:
            raise InvalidRequest(
                f"{describe_owner(owner)} has no stored login for {registry}; `tao login --list` shows the stored ones", field="registry"
            )
        return CredentialPublic(registry=registry, username=username, owner_uid=owner)

"""Images on the Docker engine: which registry an image comes from, what is local, pulls and login checks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import docker
import docker.auth
import docker.errors

from tao_server.backends.base import ImageSummary
from tao_server.backends.docker.failures import engine_errors, explain, login_failure, registry_failure
from tao_server.errors import LaunchFailure, LoginRefused


class DockerImages:
    def __init__(self, api: docker.APIClient, connection: dict[str, Any]) -> None:
        self._api = api
        self._connection = connection

    def registry_of(self, image: str) -> str:
        try:
            registry, _ = docker.auth.resolve_repository_name(_without_digest_or_tag(image))
        except docker.errors.DockerException as exc:  # a reference the engine client cannot parse
            raise LaunchFailure(f"cannot pull {image}: {explain(exc)}") from None
        return str(registry)

    def summary(self, image: str) -> ImageSummary | None:
        with engine_errors(f"inspecting image {image}"):
            try:
                details = self._api.inspect_image(image)
            except docker.errors.ImageNotFound:
                return None
        return ImageSummary(id=details.get("Id"), size=details.get("Size"), digests=details.get("RepoDigests", []))

    def pull(self, image: str, login: tuple[str, str] | None) -> Iterator[dict[str, Any]]:
        """The engine's progress events while it pulls `image`; LaunchFailure names the cause."""
        registry = self.registry_of(image)
        auth = {"username": login[0], "password": login[1]} if login is not None else None
        with engine_errors(f"pulling {image}"):
            try:
                for event in self._api.pull(_pull_reference(image), stream=True, decode=True, auth_config=auth):
                    if "error" in event:
                        raise registry_failure(image, registry, str(event["error"]))
                    yield event
            except docker.errors.APIError as exc:
                raise registry_failure(image, registry, explain(exc)) from None

    def check_login(self, registry: str, username: str, password: str) -> None:
        """Ask the registry, through the engine; LoginRefused when it does not accept the login."""
        # A client of its own: docker-py keeps a login for the later calls of the client that made
        # it, and the shared client's pulls, for other users, must never see it even for a moment.
        with engine_errors(f"checking a login for {registry}"):
            client = docker.APIClient(**self._connection)
            try:
                client.login(username=username, password=password, registry=registry, reauth=True)
            except docker.errors.APIError as exc:
                raise LoginRefused(login_failure(registry, explain(exc)), field="password") from None
            finally:
                client.close()


def _without_digest_or_tag(image: str) -> str:
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def _pull_reference(image: str) -> str:
    """name@digest for a pinned image (a tag beside a digest confuses the pull API), else the reference."""
    if "@" in image:
        return f"{_without_digest_or_tag(image)}@{image.split('@', 1)[1]}"
    return image

"""Fixtures for the daemon run as a service: its image built from this checkout, and compose projects of it.

The image is built once per session on a Debian base made locally (scripts/build-base-image: no
registry here); the engine's build cache keeps a rebuild to the layers whose sources changed.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import _remove_made_accounts, local_account, manifest_v2  # noqa: F401  (fixtures)
from tests.service.composed import ComposedDaemon, build_image

SERVER_IMAGE = os.environ.get("TAO_TEST_SERVER_IMAGE", "tao-server:test")


@pytest.fixture(scope="session")
def server_image(docker_client: Any) -> str:
    seconds = build_image(SERVER_IMAGE)
    print(f"\nthe daemon's image {SERVER_IMAGE} built in {seconds:.1f} s")
    return SERVER_IMAGE


@pytest.fixture(scope="session")
def composed(server_image: str, toolkit_image: str) -> Iterator[Callable[..., ComposedDaemon]]:
    """A factory of compose projects of the daemon, each under a directory of its own; all removed at the end."""
    made: list[ComposedDaemon] = []

    def make(env: dict[str, str] | None = None) -> ComposedDaemon:
        root = Path(tempfile.mkdtemp(prefix="tao-composed-"))  # pytest's tmp_path is closed to other accounts
        daemon = ComposedDaemon(root, server_image, f"tao-it-{uuid.uuid4().hex[:8]}", manifest_v2(toolkit_image), env=env)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.discard()


@pytest.fixture(scope="module")
def service(composed: Callable[..., ComposedDaemon], alice: Any, bob: Any) -> ComposedDaemon:
    """One daemon container for a module's tests, up and healthy.

    The accounts exist first: the container reads the host's /etc/passwd through a bind mount of
    the file, which keeps the file it was given when useradd replaces it.
    """
    return composed().start()


@pytest.fixture(scope="session")
def alice() -> tuple[str, int, int]:
    return local_account("tao-test-user")


@pytest.fixture(scope="session")
def bob() -> tuple[str, int, int]:
    return local_account("tao-test-user2")

"""The interface every executor offers to the job runner."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to start one job's container; built from the job row."""

    job_id: str
    image: str
    command: list[str]
    mounts: list[dict[str, Any]] = field(default_factory=list)
    envs: dict[str, str] = field(default_factory=dict)
    docker_options: dict[str, Any] = field(default_factory=dict)
    gpus: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ContainerState:
    container_id: str
    job_id: str
    running: bool
    exit_code: int | None


class StartFailure(Exception):
    """The container could not be created or started; `exit_code` follows `docker run` (125/126/127)."""

    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class OutputStream(Iterable[bytes], Protocol):
    """A container's output as it comes; close() lets go of it early."""

    def close(self) -> None: ...


class ImageMissing(Exception):
    """The engine does not have the job's image: pull it, then create again."""


class Executor(Protocol):
    def registry_of(self, image: str) -> str: ...

    def image_present(self, image: str) -> bool: ...

    def pull(self, image: str, auth: dict[str, str] | None) -> Iterator[dict[str, Any]]: ...

    def login(self, registry: str, username: str, password: str) -> None: ...

    def image_summary(self, image: str) -> dict[str, Any] | None: ...

    def create(self, spec: ContainerSpec) -> str: ...

    def start(self, container_id: str) -> None: ...

    def attach(self, container_id: str, tty: bool) -> OutputStream: ...

    def output(self, container_id: str) -> OutputStream: ...

    def wait(self, container_id: str) -> int: ...

    def stop(self, container_id: str, timeout: float) -> None: ...

    def remove(self, container_id: str) -> None: ...

    def entrypoint_failure(self, exit_code: int, output_head: bytes) -> StartFailure | None: ...

    def owned_containers(self) -> list[ContainerState]: ...

    def engine_info(self) -> dict[str, Any]: ...

    def data_root(self) -> str: ...

    def close(self) -> None: ...

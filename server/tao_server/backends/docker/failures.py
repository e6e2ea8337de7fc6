"""The engine's errors as the daemon's own: BackendUnavailable, BackendError, LaunchFailure with `docker run`'s exit codes.

docker-py raises its own exceptions, `requests`' and `urllib3`'s, and plain OSErrors from its
sockets, also from inside the iterators it returns; every call into it goes through
`engine_errors` so that none of them leaves this package.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import docker.errors
import requests.exceptions
import urllib3.exceptions

from tao_server.backends.entrypoint import exec_failure
from tao_server.errors import BackendError, BackendUnavailable, LaunchFailure

# The engine answered with an error, or the client failed: the launcher failed, not the task.
_ENGINE_EXCEPTIONS = (docker.errors.DockerException, requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError)
# Nothing answers at all (an engine restarting, a socket gone, a connection cut): an outage.
_UNREACHABLE = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.TimeoutError,
    http.client.IncompleteRead,
    ConnectionError,
    TimeoutError,
    FileNotFoundError,
)

# What docker-init (tini) prints, as PID 1, when the task's program cannot be executed.

# RLIMIT_* numbers as runc reports them ("error setting rlimit type 8").
_RLIMIT_NAMES = {
    0: "cpu", 1: "fsize", 2: "data", 3: "stack", 4: "core", 5: "rss", 6: "nproc", 7: "nofile",
    8: "memlock", 10: "locks", 11: "sigpending", 12: "msgqueue", 13: "nice", 14: "rtprio", 15: "rttime",
}  # fmt: skip

T = TypeVar("T")


@contextmanager
def engine_errors(doing: str) -> Iterator[None]:
    """Raise the engine's own exceptions as BackendError, saying what the daemon was doing."""
    try:
        yield
    except (BackendError, LaunchFailure):
        raise
    except _UNREACHABLE as exc:
        raise BackendUnavailable(f"the Docker engine does not answer ({doing}): {explain(exc)}") from None
    except _ENGINE_EXCEPTIONS as exc:
        raise BackendError(f"Docker engine error while {doing}: {explain(exc)}") from None


@contextmanager
def reaching(address: str) -> Iterator[None]:
    """Raise a failure to connect to the engine as BackendError naming its address."""
    try:
        yield
    except (*_UNREACHABLE, *_ENGINE_EXCEPTIONS) as exc:
        raise BackendUnavailable(f"cannot reach the Docker engine at {address}: {explain(exc)}") from None


def guarded(items: Iterator[T], doing: str) -> Iterator[T]:
    """`items` with the engine's exceptions raised as BackendError, also those raised between items."""
    with engine_errors(doing):
        yield from items


def explain(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or exc)
    return str(exc) or type(exc).__name__


def start_failure(exc: docker.errors.APIError) -> LaunchFailure:
    """Map the engine's start error to docker run's exit codes and a message naming the cause."""
    message = explain(exc)
    exec_error = re.search(r'exec: "([^"]*)": (.*?)(?::\s*unknown)?$', message)
    if exec_error and (failure := exec_failure(*exec_error.groups())):
        return failure
    rlimit = re.search(r"error setting rlimit type (\d+): (operation not permitted|invalid argument)", message)
    if rlimit:
        name = _RLIMIT_NAMES.get(int(rlimit.group(1)), f"type {rlimit.group(1)}")
        return LaunchFailure(
            f"the engine refused DockerOptions.ulimits.{name}: the host does not allow that limit "
            f"({rlimit.group(2)}); use a value within the host's hard limit"
        )
    return LaunchFailure(f"the engine could not start the container: {message}")


def registry_failure(image: str, registry: str, message: str) -> LaunchFailure:
    """The engine's pull error as a message that says what went wrong and what to do."""
    lowered = message.lower()
    if _is_unauthorized(lowered):
        hint = " (or set NGC_API_KEY for the daemon)" if registry == "nvcr.io" else ""
        return LaunchFailure(f"registry {registry} refused access to {image} (unauthorized); log in with `tao login {registry}`{hint}")
    if "no space left on device" in lowered:
        return LaunchFailure(f"the daemon's host ran out of disk space while pulling {image}: {message}")
    if "digest" in lowered and ("mismatch" in lowered or "did not match" in lowered or "verification failed" in lowered):
        return LaunchFailure(f"digest mismatch for {image}: the registry served content that does not match the pinned digest ({message})")
    if any(word in lowered for word in ("manifest unknown", "not found", "name unknown", "does not exist")):
        return LaunchFailure(
            f"image {image} was not found in registry {registry}; check the name, tag or digest in the task manifest ({message})"
        )
    if _is_unreachable(lowered):
        return LaunchFailure(f"registry {registry} is unreachable while pulling {image}: {message}")
    return LaunchFailure(f"cannot pull image {image}: {message}")


def login_failure(registry: str, message: str) -> str:
    """Why a registry refused a login, as `tao login` shows it."""
    lowered = message.lower()
    if _is_unauthorized(lowered):
        return f"registry {registry} refused the login (unauthorized); check the username and password"
    if _is_unreachable(lowered):
        return f"registry {registry} is unreachable: {message}"
    return f"registry {registry} refused the login: {message}"


def _is_unauthorized(lowered: str) -> bool:
    words = (
        "unauthorized",
        "authentication required",
        "no basic auth credentials",
        "access denied",
        "denied:",
        "incorrect username or password",
    )
    return any(word in lowered for word in words)


def _is_unreachable(lowered: str) -> bool:
    words = ("connection refused", "no such host", "i/o timeout", "dial tcp", "network is unreachable", "tls handshake", "timeout")
    return any(word in lowered for word in words)

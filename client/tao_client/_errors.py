"""The client's exceptions: one hierarchy, each with a message a user can act on; and its warnings."""

from __future__ import annotations


class TaoClientError(Exception):
    """Base of every error the client raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DaemonUnreachable(TaoClientError):
    """Nothing answers at the daemon's address (and none could be started there)."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"cannot reach the tao daemon at {address}: {reason}")
        self.address = address


class LaunchConfigError(TaoClientError):
    """The launcher config file (~/.tao_mounts.json) cannot be read or is not valid JSON."""


class ApiError(TaoClientError):
    """The daemon refused a request; `code` and `field` come from its JSON error body."""

    def __init__(self, status_code: int, code: str, message: str, field: str | None = None, request: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.field = field
        self.request = request


class JobNotFound(ApiError):
    pass


class SessionClosed(TaoClientError):
    """A terminal's websocket closed before the session said how it ended; `code` is the websocket's close code
    (1006: the connection broke, 1012: the daemon is restarting)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class LaunchWarning(UserWarning):
    """What a submission risks, as the daemon warns of it: a results dir outside every mount, ..."""


class NoLaunchConfig(LaunchWarning):
    """No launcher config at the default place (~/.tao_mounts.json): the job runs with no mounts, envs or docker options."""


def api_error(status_code: int, body: bytes, request: str) -> ApiError:
    """The error for a refused request, from the daemon's JSON error body (any HTTP client's answer)."""
    import json

    try:
        error = json.loads(body)["error"]
        code, message, field = error["code"], error["message"], error.get("field")
    except (ValueError, KeyError, TypeError):
        text = body.decode("utf-8", errors="replace")[:200]
        code, message, field = "http_error", f"{request} answered {status_code}: {text}", None
    kind = JobNotFound if status_code == 404 and code == "job_not_found" else ApiError
    return kind(status_code, code, message, field, request)

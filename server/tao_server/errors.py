"""The daemon's error types. Each carries a stable code and maps once to an HTTP status (api/errors.py)."""

from __future__ import annotations

from typing import Any


class TaoError(Exception):
    """A failure with a message a user can act on."""

    code = "error"
    http_status = 500

    def __init__(self, message: str, *, field: str | None = None, source: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.source = source

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.source is not None:
            body["source"] = self.source
        return body


class InvalidRequest(TaoError):
    code = "invalid_request"
    http_status = 422


class InvalidLaunchConfig(InvalidRequest):
    """A bad `Mounts` / `Envs` / `DockerOptions` entry; the message names file, key and value."""

    code = "invalid_launch_config"


class UnknownTask(InvalidRequest):
    code = "unknown_task"


class NoGpus(InvalidRequest):
    code = "gpus_unavailable"


class Unauthorized(TaoError):
    """A TCP request without a valid bearer token."""

    code = "unauthorized"
    http_status = 401


class JobNotFound(TaoError):
    code = "job_not_found"
    http_status = 404

    @classmethod
    def for_id(cls, job_id: str) -> JobNotFound:
        """The one answer for a job that does not exist and for one the caller may not see."""
        return cls(f"no job {job_id!r}; `tao list --all` shows the known jobs", field="id")


class JobConflict(TaoError):
    code = "job_conflict"
    http_status = 409


class ManifestError(TaoError):
    """The task manifest cannot be read; raised at start-up, names file, key and reason."""

    code = "invalid_manifest"


class EngineError(TaoError):
    """The Docker engine refused or failed an operation."""

    code = "engine_error"
    http_status = 502

"""Every error the daemon raises on purpose, in one hierarchy.

Each error carries a message a user can act on, a stable `code`, and the HTTP status it maps to
(api/error_responses.py turns them into JSON bodies, once). The field it is about and the file it came
from travel with it, so `tao` can name them.

    TaoError                        500  a failure with a message a user can act on
    ├── InvalidRequest              422  the request itself is wrong
    │   ├── InvalidLaunchConfig          a bad Mounts / Envs / DockerOptions entry (names file and key)
    │   ├── HostPathArgument             an argument names a host path the container does not see (gives the one it does)
    │   ├── UnknownTask                  no such task (or group) in the manifest
    │   ├── NoGpus                       GPUs asked for that the host does not have
    │   ├── InvalidWorkflowFile          a pipeline (or sweep) file that cannot be run: file, line, column and key
    │   └── PolicyRefusal           403  the policy does not grant the caller what the job asks for
    │       └── DestinationRefused       a notification URL whose address the policy's notify_to does not open
    ├── RequestTooLarge             413  a body over the size cap (api/body_limit.py answers it, unread)
    ├── TooManySessions             429  a terminal or forwarded connection past its user's or job's bound
    ├── Unauthorized                401  a TCP request without a valid bearer token
    ├── CrossSiteRequest            403  a browser's state change from another site (ui/guard.py answers it)
    ├── LinkNotYours                403  a dashboard sign-in link redeemed by another account than the one it was made for
    ├── NotAllowed                  403  a route the caller may not use: /metrics for a user, any other for a scrape token
    ├── LoginRefused                401  the registry refused a login (`tao login`)
    ├── JobNotFound                 404  no such job, or one the caller may not see
    ├── PipelineNotFound            404  no such pipeline, or one the caller may not see
    ├── SweepNotFound               404  no such sweep, or one the caller may not see
    ├── JobConflict                 409  a job id already used by a different job
    │   ├── DuplicateJobId               the id was taken between the check and the insert
    │   └── NotAttachable                the job takes no terminal or port-forward (not -i, ended, a batch backend)
    ├── DaemonCannotStart                the daemon cannot start as configured: its data dir, a socket, TLS (start-up)
    ├── ManifestError                    the task manifest cannot be read (start-up)
    ├── PolicyError                      the policy file cannot be used (start-up)
    ├── DatabaseUnusable                 the job table is damaged, unreadable or too new (start-up)
    ├── CredentialFileUnreadable         the stored logins cannot be read
    ├── StorageFull                 507  the daemon cannot write its database or a log (names the path)
    │   └── DatabaseGone                 its database file was deleted or replaced while it ran
    ├── UnsafeFile                       a file in a job's mount the daemon will not read (a link, a FIFO, another user's)
    ├── DaemonStopping              503  the daemon is stopping: a stream ends, its client follows again later
    ├── BackendError                502  the backend (the Docker engine, a cluster) failed an operation
    │   └── BackendUnavailable      503  it cannot be reached: jobs wait for it, nothing ends because of it
    └── LaunchFailure               502  a job could not be started; `exit_code` is 125, 126 or 127 as `docker run`
        └── ImageMissing                 the backend lacks the job's image: pull it, then prepare the job again

Backends turn their engine's own exceptions into BackendError and LaunchFailure, so nothing
outside `backends/` needs to know which engine runs the jobs.
"""

from __future__ import annotations

from typing import Any

# As `docker run`: the launcher or engine failed (125), the entrypoint cannot run (126) or is missing (127).
LAUNCHER_FAILURE = 125
CANNOT_EXECUTE = 126
NOT_FOUND = 127


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


class HostPathArgument(InvalidRequest):
    """An argument names a path on the host, under a mount's source but no destination; the message gives the container's path."""

    code = "host_path_argument"


class UnknownTask(InvalidRequest):
    code = "unknown_task"


class NoGpus(InvalidRequest):
    code = "gpus_unavailable"


class InvalidWorkflowFile(InvalidRequest):
    """A pipeline or sweep file that cannot be run: its message starts FILE:LINE:COLUMN and names the key (`field`)."""

    code = "invalid_workflow_file"


class PolicyRefusal(InvalidRequest):
    """The job asks for something the policy does not grant its caller."""

    code = "refused_by_policy"
    http_status = 403


class DestinationRefused(PolicyRefusal):
    """A notification URL resolves to an address notifications may not reach (loopback, private, ...) and notify_to does not list."""

    code = "destination_refused"


class RequestTooLarge(TaoError):
    """A request body over TAO_MAX_REQUEST_BYTES; refused before it is read."""

    code = "request_too_large"
    http_status = 413


class TooManySessions(TaoError):
    """A terminal or forwarded connection past the bound of its user or its job (interactive/session_registry.py); the message names the setting."""

    code = "too_many_sessions"
    http_status = 429


class Unauthorized(TaoError):
    """A TCP request without a valid bearer token."""

    code = "unauthorized"
    http_status = 401


class CrossSiteRequest(TaoError):
    """A state-changing request a browser sent from a page of another site."""

    code = "cross_site_request"
    http_status = 403


class LinkNotYours(TaoError):
    """A dashboard sign-in code redeemed by another account than the one it was made for (or one the daemon cannot name)."""

    code = "link_not_yours"
    http_status = 403


class NotAllowed(TaoError):
    """A route the caller may not use at all: /metrics is for admins and scrape tokens, and a scrape token reads nothing else."""

    code = "not_allowed"
    http_status = 403


class LoginRefused(TaoError):
    """A registry refused the login `tao login` asked to store."""

    code = "login_refused"
    http_status = 401


class SweepNotFound(TaoError):
    code = "sweep_not_found"
    http_status = 404

    @classmethod
    def for_id(cls, sweep_id: str) -> SweepNotFound:
        """The one answer for a sweep that does not exist and for one the caller may not see."""
        return cls(f"no sweep {sweep_id!r}; `tao sweep list` shows yours", field="id")


class JobNotFound(TaoError):
    code = "job_not_found"
    http_status = 404

    @classmethod
    def for_id(cls, job_id: str) -> JobNotFound:
        """The one answer for a job that does not exist and for one the caller may not see."""
        return cls(f"no job {job_id!r}; `tao list --all` shows the known jobs", field="id")


class PipelineNotFound(TaoError):
    code = "pipeline_not_found"
    http_status = 404

    @classmethod
    def for_id(cls, pipeline_id: str) -> PipelineNotFound:
        """The one answer for a pipeline that does not exist and for one the caller may not see."""
        return cls(f"no pipeline {pipeline_id!r}; `tao pipeline list` shows yours", field="id")


class JobConflict(TaoError):
    code = "job_conflict"
    http_status = 409


class DuplicateJobId(JobConflict):
    """The job table already has this id (raised by the store; the service decides what it means)."""


class NotAttachable(JobConflict):
    """A terminal or a port-forward asked of a job that cannot take one now; the message says why."""

    code = "not_attachable"


class DaemonCannotStart(TaoError):
    """`tao-server` cannot start as configured (its data dir held by another daemon, a socket in use, TLS files
    it cannot read); the message names what and why. Raised before anything listens."""

    code = "cannot_start"


class ManifestError(TaoError):
    """The task manifest cannot be read; raised at start-up, names file, key and reason."""

    code = "invalid_manifest"


class PolicyError(TaoError):
    """The policy file cannot be used; raised at start-up, naming file, key and reason."""

    code = "invalid_policy"


class DatabaseUnusable(TaoError):
    """The job table cannot be used at start-up (damaged, unreadable, or written by a newer release); names the file."""

    code = "database_unusable"


class CredentialFileUnreadable(TaoError):
    code = "credential_file_unreadable"


class StorageFull(TaoError):
    """A write to the daemon's own storage failed (a full disk, a read-only one); the message names the path and what is wrong."""

    code = "storage_full"
    http_status = 507


class DatabaseGone(StorageFull):
    """The database file the daemon opened was deleted or replaced under it: it takes no new work until restarted."""

    code = "database_gone"


class UnsafeFile(TaoError):
    """A file a job wrote that the daemon will not read: reached through a link, not a regular file, or another user's.

    Never an answer to a request: what reads such files (the status file's follower) counts it and goes on.
    """

    code = "unsafe_file"


class DaemonStopping(TaoError):
    """The daemon is stopping: a log stream or session ends now, and its client takes it up with the next daemon."""

    code = "daemon_stopping"
    http_status = 503


class BackendError(TaoError):
    """The backend that runs jobs failed an operation."""

    code = "backend_error"
    http_status = 502


class BackendUnavailable(BackendError):
    """The backend does not answer at all (connection refused, reset, timed out).

    Not a job's end: the runner keeps such jobs as they are and takes them up again once it answers.
    """

    code = "backend_unavailable"
    http_status = 503


class LaunchFailure(TaoError):
    """A job could not be started; `exit_code` follows `docker run` (125, 126 or 127)."""

    code = "launch_failed"
    http_status = 502

    def __init__(self, message: str, exit_code: int = LAUNCHER_FAILURE, **where: str | None) -> None:
        super().__init__(message, **where)
        self.exit_code = exit_code


class ImageMissing(LaunchFailure):
    """The backend does not have the job's image: pull it, then prepare the job again."""

    code = "image_missing"

    def __init__(self, image: str) -> None:
        super().__init__(f"image {image} is not on the backend")
        self.image = image

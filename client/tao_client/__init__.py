"""The TAO launcher client: `Client` and `Job` for notebooks and dashboards, and the `tao` CLI.

    from tao_client import Client
    job = Client().submit("detectnet_v2", "train", ["-e", "/workspace/specs/train.txt"])
    job.wait(stream_to=sys.stdout.buffer)

Names are imported on first use, so `tao --help` does not pay for the HTTP stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["ApiError", "Client", "DaemonUnreachable", "Job", "JobNotFound", "LaunchConfigError", "TaoClientError"]

if TYPE_CHECKING:
    from tao_client._errors import ApiError, DaemonUnreachable, JobNotFound, LaunchConfigError, TaoClientError
    from tao_client.client import Client, Job


def __getattr__(name: str) -> Any:
    if name in ("Client", "Job"):
        from tao_client import client

        return getattr(client, name)
    if name in __all__:
        from tao_client import _errors

        return getattr(_errors, name)
    raise AttributeError(name)

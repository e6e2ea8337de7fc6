"""The TAO launcher client: `Client` and `Job` for notebooks and dashboards, and the `tao` CLI.

    from tao_client import Client
    job = Client().submit("detectnet_v2", "train", ["-e", "/workspace/specs/train.txt"])
    job.wait(stream_to=sys.stdout.buffer)

Names are imported on first use, so `tao --help` pays for no more than it uses.
"""

__version__ = "0.1.0"
__all__ = ["ApiError", "Client", "DaemonUnreachable", "Job", "JobNotFound", "LaunchConfigError", "TaoClientError"]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name in ("Client", "Job"):
        from tao_client import client

        return getattr(client, name)
    if name in __all__:
        from tao_client import _errors

        return getattr(_errors, name)
    raise AttributeError(name)

"""The TAO launcher client: `Client` and `Job` for scripts, `AsyncClient` for notebooks, and the `tao` CLI.

    from tao_client import Client
    job = Client().submit("detectnet_v2", "train", ["-e", "/workspace/specs/train.txt"])
    job.wait(stream_to=sys.stdout.buffer)

`submit` sends the user's launcher config (~/.tao_mounts.json, or $LAUNCHER_MOUNTS) as `tao`
does; `launch_config=` passes another (a dict, a path), `launch_config=False` none. What the
daemon warns of comes as `LaunchWarning`s (Python's warnings) and in `job.warnings`.

    from tao_client import AsyncClient          # pip install 'tao-launcher[sdk]' (httpx)
    job = await AsyncClient().submit("detectnet_v2", "train", ["-e", "/workspace/specs/train.txt"])
    await job                                   # the job, once it has ended

Names are imported on first use, so `tao --help` pays for no more than it uses: httpx only
loads with `AsyncClient`.
"""

__version__ = "0.1.0"
__all__ = [
    "ApiError",
    "AsyncClient",
    "AsyncJob",
    "Client",
    "DaemonUnreachable",
    "Job",
    "JobList",
    "JobNotFound",
    "LaunchConfigError",
    "LaunchWarning",
    "NoLaunchConfig",
    "TaoClientError",
]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name in ("Client", "Job"):
        from tao_client import client

        return getattr(client, name)
    if name in ("AsyncClient", "AsyncJob", "JobList"):
        from tao_client import _async

        return getattr(_async, name)
    if name in __all__:
        from tao_client import _errors

        return getattr(_errors, name)
    raise AttributeError(name)

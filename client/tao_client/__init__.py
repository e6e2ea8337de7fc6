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

An interactive job's terminal (`client.terminal(job_id)`: a Terminal) and its ports
(`client.forward_port(job_id, 8888)`: a PortForward) are SDK calls too; `tao attach` and
`tao port-forward` are presentations of them.

    client.py         Client, Job: the SDK over `_http` (plain sockets, so `tao` starts fast)
    _async.py         AsyncClient, AsyncJob, JobList: the SDK on httpx (loaded on first use)
    _routes.py        every request the SDK makes, built once for both clients
    _terminal.py      Terminal, AsyncTerminal: an interactive job's terminal
    _forward.py       PortForward: a job's port reached through a local listener (spliced, or a websocket)
    _http.py          HTTP/1.1 on plain sockets (Unix or TCP, TLS)
    _websocket.py     RFC 6455 on plain sockets, for terminals and forwards
    _errors.py        the client's exceptions and warnings
    _display.py       the HTML of jobs and pulls in a notebook
    _training.py      Metrics: a job's series, rows and DataFrames
    address.py        finding the daemon, and where `tao` may start one
    local_daemon.py   starting and stopping the daemon `tao` starts; its settings against the caller's
    launch_config.py  reading the launcher config file (~/.tao_mounts.json)
    cli/              the `tao` command: a presentation layer over the SDK

What client and server share (default paths, the time-limit grammar, secret envs, progress words)
is in tao_common. Names are imported on first use, so `tao --help` pays for no more than it uses:
httpx only loads with `AsyncClient`.
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
    "PortForward",
    "SessionClosed",
    "TaoClientError",
    "Terminal",
]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name in ("Client", "Job"):
        from tao_client import client

        return getattr(client, name)
    if name == "Terminal":
        from tao_client import _terminal

        return _terminal.Terminal
    if name == "PortForward":
        from tao_client import _forward

        return _forward.PortForward
    if name in ("AsyncClient", "AsyncJob", "JobList"):
        from tao_client import _async

        return getattr(_async, name)
    if name in __all__:
        from tao_client import _errors

        return getattr(_errors, name)
    raise AttributeError(name)

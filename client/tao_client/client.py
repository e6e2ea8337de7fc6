"""The Python API over the daemon's REST interface; with AsyncClient (_async.py), the only code in the client that speaks HTTP.

Every request is built once, in _routes.py; this sends it over `_http.Transport` (plain sockets).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from tao_client import _routes, address
from tao_client._errors import ApiError, DaemonUnreachable, api_error
from tao_client._http import NOTHING_ANSWERS, Response, Transport, TransportError

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable
    from typing import IO, Any

    from tao_client._forward import PortForward
    from tao_client._pipelines import Pipelines
    from tao_client._routes import Call
    from tao_client._terminal import Terminal
    from tao_client._training import Metrics
    from tao_client._websocket import WebSocket
    from tao_client.sweeps import Sweeps

ACTIVE_STATUSES = ("queued", "pulling", "starting", "running")
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled", "error")


class JobView:
    """What the daemon last reported of a job, read-only: the part `Job` and `AsyncJob` share."""

    data: dict[str, Any]
    # What the daemon warned of when the job was submitted: kept on the job `submit` returned, through its refreshes.
    warnings: list[str]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, task={self.data['task']!r}, status={self.status!r})"

    def _repr_html_(self) -> str:
        from tao_client import _display

        return _display.job_table({**self.data, "warnings": self.warnings})

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def status(self) -> str:
        return self.data["status"]

    @property
    def exit_code(self) -> int | None:
        return self.data["exit_code"]

    @property
    def error(self) -> str | None:
        return self.data["error"]

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def progress(self) -> dict[str, Any] | None:
        """Its training progress from TAO's status file: epoch, max_epoch, step, max_step, fraction, eta_seconds,
        status, message, kpi; None without a status file (`data["progress_unavailable"]` says why, when it cannot be followed)."""
        return self.data.get("progress")


class Job(JobView):
    """A job as the daemon last reported it; `refresh()` asks again."""

    def __init__(self, client: Client, data: dict[str, Any]) -> None:
        self._client = client
        self.data = data
        self.warnings = list(data.get("warnings") or [])

    def refresh(self) -> Job:
        self.data = self._client.job(self.id).data
        return self

    def logs(self) -> str:
        return self._client.logs(self.id).decode("utf-8", errors="replace")

    def follow(self, offset: int = 0) -> Iterator[bytes]:
        return self._client.follow_logs(self.id, offset)

    def cancel(self) -> Job:
        self.data = self._client.cancel(self.id).data
        return self

    def metrics(self) -> Metrics:
        """Its metric series (loss, KPIs, ...) as the daemon has read them so far; `.to_pandas()` for a DataFrame."""
        return self._client.metrics(self.id)

    def wait(self, stream_to: IO[bytes] | None = None) -> Job:
        """Block until the job ends, copying its output to `stream_to` as it comes."""
        for chunk in self.follow():
            if stream_to is not None:
                stream_to.write(chunk)
                stream_to.flush()
        return self.refresh()


class Client:
    """Talks to a tao daemon over its Unix socket or HTTP(S).

    With no host and nothing answering on the local socket, a daemon is started in the background
    (at an explicit address only with TAO_AUTOSTART=1, and only in a private directory: address.py).
    """

    def __init__(
        self,
        host: str | None = None,
        *,
        token: str | None = None,
        ca_cert: str | None = None,
        autostart: bool = True,
        timeout: float = 30.0,
    ) -> None:
        """`host`: unix:///path or http(s)://HOST:PORT (default $TAO_HOST, else the local socket).
        `token`: the bearer token for TCP (default $TAO_TOKEN); `ca_cert`: a CA bundle for https (default $TAO_CA_CERT)."""
        self.address = address.resolve(host)
        self._autostart = autostart
        socket_path = str(self.address.socket_path) if self.address.socket_path else None
        token, ca_cert = address.tcp_credentials(self.address, token, ca_cert)
        self._http = Transport(self.address.base_url, socket_path, timeout, token=token, ca_cert=ca_cert)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pipelines(self) -> Pipelines:
        """Pipeline files run as one submission: `client.pipelines.run("flow.yaml")`, `.list()`, `.get(ID)`, `.stop(ID)`."""
        from tao_client._pipelines import Pipelines

        return Pipelines(self)

    # -- jobs -------------------------------------------------------------------------------------

    def submit(
        self,
        task: str,
        subtask: str | None = None,
        args: Iterable[str] = (),
        *,
        group: str | None = None,
        launch_config: Any = None,
        launch_config_source: str | None = None,
        gpus: str = "auto",
        gpu_indices: list[str] | None = None,
        job_id: str | None = None,
        pull: str | None = None,
        nodes: int | None = None,
        time: str | None = None,
        interactive: bool = False,
        tty: bool = False,
        notify: Iterable[str] = (),
        status_file: str | None = None,
        after: Iterable[str] = (),
        after_any: Iterable[str] = (),
        retries: int = 0,
    ) -> Job:
        """Queue a task run; returns at once. Passing `job_id` makes a retried submission harmless.

        `launch_config`: None sends your launcher config as `tao` does (~/.tao_mounts.json, or
        $LAUNCHER_MOUNTS); a dict, a path or what `launch_config.read()` returns sends that; False, none.
        What the daemon warns of (a results dir outside every mount) comes as LaunchWarnings and in `job.warnings`.
        `nodes` and `time` (a limit in Slurm's forms: "90", "2:00:00", "1-12") go to a backend that takes them.
        `interactive` keeps the task's input open for `terminal()`; `tty` runs it on a terminal (`docker run -i`, `-t`).
        `notify`: URLs told of the job's start and end, beside your defaults (`notify_add`).
        `status_file`: TAO's status.json as the container sees it, where the results dir in `args` does not say.
        `after`: jobs that must succeed before it starts (`--after`); `after_any`: jobs that must only end.
        `retries`: how many more times it runs after a non-zero exit (`--retries`).
        """
        body = _routes.submission(
            task,
            subtask,
            args,
            group,
            launch_config,
            launch_config_source,
            gpus,
            gpu_indices,
            job_id,
            pull,
            nodes,
            time,
            notify,
            status_file,
            interactive,
            tty,
            after,
            after_any,
            retries,
        )
        return Job(self, warned(self._json(_routes.submit(body))))

    def job(self, job_id: str) -> Job:
        return Job(self, self._json(_routes.job(job_id)))

    @property
    def sweeps(self) -> Sweeps:
        """Hyperparameter sweeps: `client.sweeps.run("sweep.yaml")`, `.list()`, `.get(ID)`, `.stop(ID)` (tao_client.sweeps)."""
        from tao_client.sweeps import Sweeps

        return Sweeps(self)

    def jobs(self, statuses: Iterable[str] | None = None, container_id: str | None = None, page_size: int = 200) -> Iterator[Job]:
        """Every matching job, newest first, fetched a page at a time."""
        params = _routes.listing(statuses, container_id, page_size)
        while True:
            page = self._json(_routes.jobs_page(params))
            for data in page["jobs"]:
                yield Job(self, data)
            if not page["next_cursor"]:
                return
            params["cursor"] = page["next_cursor"]

    def cancel(self, job_id: str) -> Job:
        return Job(self, self._json(_routes.cancel(job_id)))

    def wait_until_done(self, job_id: str, timeout: float | None = None) -> Job:
        """Poll until the job ends (for callers that do not follow its output)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.02
        while True:
            job = self.job(job_id)
            if job.done or (deadline is not None and time.monotonic() >= deadline):
                return job
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    # -- logs -------------------------------------------------------------------------------------

    def logs(self, job_id: str, offset: int = 0, tail: int | None = None, attempt: int | None = None) -> bytes:
        """The job's output from byte `offset`; with `tail`, only its last `tail` bytes; with `attempt` (from 1), that attempt's alone."""
        return self._request(_routes.logs(job_id, offset, tail, attempt)).content

    def follow_logs(self, job_id: str, offset: int = 0) -> Iterator[bytes]:
        """The job's output from `offset` as it is written; ends when the job ends."""
        response = self._request(_routes.follow_logs(job_id, offset), stream=True, timeout=None)
        try:
            yield from response.iter_bytes()
        except TransportError as exc:
            raise DaemonUnreachable(self.address.url, str(exc)) from None

    def events(self, job_id: str, after: int = 0) -> dict[str, Any]:
        """{"events": [...], "next_after": N}: pull progress and the like, after event number `after`."""
        return self._json(_routes.events(job_id, after))

    def metrics(self, job_id: str) -> Metrics:
        """The job's metric series from its status file, so far; `.to_pandas()` for a DataFrame."""
        from tao_client._training import Metrics

        return Metrics(self._json(_routes.metrics(job_id)))

    def metrics_csv(self, job_id: str) -> bytes:
        """The job's metric series as CSV: series,epoch,step,value,time."""
        return self._request(_routes.metrics(job_id, csv=True)).content

    # -- notifications ----------------------------------------------------------------------------

    def notify_urls(self) -> list[str]:
        """Your default notification URLs, masked: every new job of yours notifies them of its start and end."""
        return [entry["url"] for entry in self._json(_routes.notify_urls())["urls"]]

    def notify_add(self, url: str) -> str:
        """Add a default notification URL (checked as `--notify` is); returns it masked."""
        answer: str = self._json(_routes.notify_add(url))["url"]
        return answer

    def notify_remove(self, url: str) -> str:
        """Remove a default notification URL, given whole or masked as listed; returns it masked."""
        answer: str = self._json(_routes.notify_remove(url))["url"]
        return answer

    def notify_secret(self) -> str:
        """Your signing secret (made on first use): X-Tao-Signature-256 is the HMAC-SHA256 of each body, keyed with it."""
        answer: str = self._json(_routes.notify_secret())["secret"]
        return answer

    # -- sessions ---------------------------------------------------------------------------------

    def terminal(self, job_id: str, offset: int | None = None) -> Terminal:
        """A session on an interactive job's terminal (`tao ... -i`): its output from byte `offset` (None: from now
        on) and its end to read, your keys, resizes and the end of input to send (see Terminal). Your jobs only."""
        from tao_client._terminal import Terminal

        return Terminal(job_id, self._websocket(_routes.terminal(job_id, offset)))

    def forward_port(
        self,
        job_id: str,
        remote_port: int,
        local_port: int = 0,
        local_address: str = "127.0.0.1",
        on_error: Callable[[str], None] | None = None,
    ) -> PortForward:
        """Reach `remote_port` inside the running job's container at `local_address`:`local_port` here (0: any free port),
        until `close()`. On the Unix socket the bytes go in the kernel; over TCP through the daemon. Your jobs only."""
        from tao_client._forward import PortForward

        return PortForward(self, job_id, remote_port, local_port, local_address, on_error)

    def connect_port(self, job_id: str, port: int) -> WebSocket:
        """A websocket carrying one TCP connection to `port` inside the job's container (your jobs only).

        Bytes go both ways as binary frames; {"type": "eof"} as text ends a direction. `forward_port` uses it over TCP.
        """
        return self._websocket(_routes.port(job_id, port))

    def port_connection(self, job_id: str, port: int) -> socket.socket:
        """On the local Unix socket: a TCP connection to `port` inside the job's container, as a socket of this process.

        The daemon makes it inside the job's network and hands it over: the bytes then go in the
        kernel, not through the daemon. Over TCP, use `connect_port`.
        """
        call = _routes.port_connection(job_id, port)
        try:
            status, _headers, answer = self._http.receive_descriptor(call.path)
        except TransportError as exc:
            raise DaemonUnreachable(self.address.url, str(exc)) from None
        if status != 204:
            raise api_error(status, answer, f"{call.method} {call.path}")
        connection: socket.socket = answer
        return connection

    @property
    def local(self) -> bool:
        """Whether the daemon is reached on its Unix socket (it can then hand over file descriptors)."""
        return self.address.socket_path is not None

    def _websocket(self, call: Call) -> WebSocket:
        try:
            status, _headers, opened = self._http.websocket(call.path, call.params)
        except TransportError as exc:
            raise DaemonUnreachable(self.address.url, str(exc)) from None
        if status != 101:
            raise api_error(status, opened, f"{call.method} {call.path}")
        websocket: WebSocket = opened
        return websocket

    # -- images and registries --------------------------------------------------------------------

    def images(self) -> list[dict[str, Any]]:
        return self._json(_routes.images())

    def pull(self, tasks: Iterable[str] = (), images: Iterable[str] = ()) -> Iterator[dict[str, Any]]:
        """Progress of pulling the tasks' images: {"type": "progress", ...} and {"type": "done", "image", "error"}."""
        import json

        response = self._request(_routes.pull(tasks, images), stream=True, timeout=None)
        pending = b""
        try:
            for chunk in response.iter_bytes():
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        except TransportError as exc:
            raise DaemonUnreachable(self.address.url, str(exc)) from None

    def login(self, registry: str, username: str, password: str) -> dict[str, Any]:
        """Check the login with the registry and keep it with the daemon for this user's pulls from there.

        The answer's `owner_uid` says whose it is; None: the daemon's own, which every job without a
        login of its owner's uses (the daemon's user and root store those).
        """
        return self._json(_routes.login(registry, username, password))

    def logout(self, registry: str) -> dict[str, Any]:
        """Forget this user's login for `registry`; returns the login forgotten."""
        return self._json(_routes.logout(registry))

    def logins(self) -> list[dict[str, Any]]:
        """This user's stored logins (registry, username, owner_uid); never a password."""
        return self._json(_routes.logins())

    # -- daemon -----------------------------------------------------------------------------------

    def tasks(self) -> dict[str, Any]:
        return self._json(_routes.tasks())

    def info(self, verbose: bool = False) -> dict[str, Any]:
        return self._json(_routes.info(verbose))

    def daemon(self) -> dict[str, Any]:
        """The daemon's process: version, addresses, dashboard, manifest; for its own user (and root) also its
        pid, data dir, log, whether `tao` started it, and the TAO_* environment it started with."""
        return self._json(_routes.daemon())

    def dashboard_link(self) -> str:
        """A link that signs you in to the dashboard, good once and for a minute (on the daemon's Unix socket only)."""
        link: str = self._json(_routes.dashboard_link())["url"]
        return link

    def running_daemon(self) -> dict[str, Any] | None:
        """`daemon()` when a daemon answers; None when nothing does. Never starts one."""
        try:
            response = self._send(_routes.daemon())
        except TransportError as exc:
            if str(exc) == NOTHING_ANSWERS:
                return None
            raise address.unreachable(self.address, str(exc)) from None
        if not response.is_success:
            raise _api_error(response)
        answer: dict[str, Any] = response.json()
        return answer

    # -- plumbing ---------------------------------------------------------------------------------

    def _json(self, call: Call) -> Any:
        return self._request(call).json()

    def _request(self, call: Call, **options: Any) -> Response:
        """Send `call`, starting a local daemon first when nothing answers and that is allowed; ApiError when refused."""
        try:
            response = self._send(call, **options)
        except TransportError as exc:
            if not (self._autostart and address.autostart_refusal(self.address) is None and not address.listening(self.address)):
                raise address.unreachable(self.address, str(exc)) from None
            from tao_client import local_daemon

            local_daemon.autostart(self.address)
            try:
                response = self._send(call, **options)
            except TransportError as retry_exc:
                raise DaemonUnreachable(self.address.url, str(retry_exc)) from None
        if response.is_success:
            return response
        raise _api_error(response)

    def _send(self, call: Call, **options: Any) -> Response:
        return self._http.request(call.method, call.path, params=call.params, json_body=call.json, **options)


def _api_error(response: Response) -> ApiError:
    return api_error(response.status_code, response.content, response.request)


def warned(data: dict[str, Any]) -> dict[str, Any]:
    """A submitted job's answer, its `warnings` said as LaunchWarnings (Python's warnings: once per place and text)."""
    if data.get("warnings"):
        import warnings

        from tao_client._errors import LaunchWarning

        for message in data["warnings"]:
            warnings.warn(LaunchWarning(message), stacklevel=3)
    return data

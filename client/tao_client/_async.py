"""`AsyncClient` and `AsyncJob`: the SDK for notebooks and asyncio programs, on httpx.

The sync `Client` speaks HTTP on plain sockets so that `tao` starts fast; this one may cost an
import, so it uses httpx (the `sdk` extra) and is loaded only when asked for
(`tao_client.AsyncClient`). It finds the daemon, reads $TAO_TOKEN and $TAO_CA_CERT, starts a
local daemon and maps refusals to exceptions exactly as `Client` does: through the same
functions in `address`, `client` and `_errors`, and it sends the same requests (_routes.py). A
job's output follows over the daemon's `?follow=true` stream, which ends when the job's end is
recorded. Terminals and port-forwards are Client's, on sockets and threads of their own, with
asyncio calls over them.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from typing import IO, TYPE_CHECKING, Any

import httpx

from tao_client import _display, _http, _routes, address
from tao_client._errors import DaemonUnreachable, api_error
from tao_client._training import Metrics

if TYPE_CHECKING:
    from tao_client._forward import PortForward
    from tao_client._pipelines import AsyncPipelines
    from tao_client._terminal import AsyncTerminal
from tao_client._routes import Call
from tao_client.client import Client, JobView, warned

# Past the end of any log: following from here reads no output and still ends with the job.
PAST_ANY_LOG = 2**62
EVENT_POLL_INTERVAL = 0.25
WATCH_INTERVAL = 2.0  # how often `watch()` redraws a running job's progress and curves
RECONNECT_SECONDS = 30.0  # as `tao` waits for a restarting daemon
RECONNECT_INTERVAL = 0.2
BEFORE_RUNNING = ("queued", "starting", "pulling")  # a job pulls its image while starting: queued, starting, pulling, starting


class AsyncJob(JobView):
    """A job as the daemon last reported it. `await job` waits for its end and returns it."""

    def __init__(self, client: AsyncClient, data: dict[str, Any]) -> None:
        self._client = client
        self.data = data
        self.warnings = list(data.get("warnings") or [])
        self.pull: _display.PullProgress | None = None
        # Its series as `metrics()` last read them, which the job's HTML draws.
        self.last_metrics: Metrics | None = None

    def __await__(self) -> Generator[Any, None, AsyncJob]:
        return self.wait().__await__()

    def _repr_html_(self) -> str:
        return _display.job_table({**self.data, "warnings": self.warnings}, self.pull, self.last_metrics)

    async def refresh(self) -> AsyncJob:
        self.data = (await self._client.job(self.id)).data
        return self

    async def wait(self, stream_to: IO[bytes] | None = None) -> AsyncJob:
        """Wait for the job's end (copying its output to `stream_to` as it comes, when given); returns the job."""
        if stream_to is None:
            async for _ in self._follow(PAST_ANY_LOG):
                pass  # no output from past the end: the stream only says when the job has ended
        else:
            async for chunk in self._follow(0):
                stream_to.write(chunk)
                stream_to.flush()
        return self

    async def logs(self, offset: int = 0, follow: bool = False) -> AsyncIterator[bytes]:
        """The job's output from byte `offset`: what is there now, or with `follow` everything until the job ends."""
        if follow:
            async for chunk in self._follow(offset):
                yield chunk
        elif chunk := await self._client.logs(self.id, offset):
            yield chunk

    async def _follow(self, offset: int) -> AsyncIterator[bytes]:
        """The output from `offset` to the job's end, refreshing the job at its end.

        A restarting daemon drops its streams and adopts the job: as `tao` does, this reconnects
        from the last byte received for up to RECONNECT_SECONDS, so nothing is lost or doubled.
        """
        deadline = None
        while True:
            try:
                async for chunk in self._client.follow_logs(self.id, offset):
                    offset, deadline = offset + len(chunk), None
                    yield chunk
                if (await self.refresh()).done:
                    return
            except DaemonUnreachable:
                now = asyncio.get_running_loop().time()
                deadline = deadline or now + RECONNECT_SECONDS
                if now > deadline:
                    raise
            await asyncio.sleep(RECONNECT_INTERVAL)

    async def output(self) -> str:
        """The job's whole output so far, as text."""
        return (await self._client.logs(self.id)).decode("utf-8", errors="replace")

    async def cancel(self) -> AsyncJob:
        self.data = (await self._client.cancel(self.id)).data
        return self

    async def metrics(self) -> Metrics:
        """Its metric series (loss, KPIs, ...) as the daemon has read them so far; `.to_pandas()` for a DataFrame."""
        self.last_metrics = await self._client.metrics(self.id)
        return self.last_metrics

    async def pull_progress(self) -> AsyncIterator[_display.PullProgress]:
        """The image pull's progress after each batch of events, until the pull is over or the job past it.

        Also kept as `job.pull`, which the job's HTML shows.
        """
        progress = self.pull = self.pull or _display.PullProgress()
        after, moved_on = 0, False
        while not (progress.finished or moved_on):
            answer = await self._client.events(self.id, after)
            after = answer["next_after"]
            # The status is read after the events; a job seen past its pull had written them all
            # by then, so one more read gets the last of them.
            moved_on = (await self.refresh()).status not in BEFORE_RUNNING
            events = answer["events"] + ((await self._client.events(self.id, after))["events"] if moved_on else [])
            if progress.fold(events):
                yield progress
            elif not moved_on:
                await asyncio.sleep(EVENT_POLL_INTERVAL)

    async def watch(self) -> AsyncJob:
        """In a notebook: show the job and keep it current until it ends: status, pull progress, training progress
        and a curve per series (the loss growing epoch by epoch)."""
        ipython_display = _optional("IPython.display", "watch()")
        HTML, display = ipython_display.HTML, ipython_display.display

        handle = display(HTML(self._repr_html_()), display_id=True)  # None outside IPython: nothing to keep current

        def show() -> None:
            if handle is not None:
                handle.update(HTML(self._repr_html_()))

        async for _ in self.pull_progress():
            show()
        show()  # past its pull: running, or already ended
        ended = asyncio.ensure_future(self.wait())
        while not ended.done():
            await asyncio.wait({ended}, timeout=WATCH_INTERVAL)
            if self.data.get("progress") or not ended.done():
                await self.metrics()
            if not ended.done():
                await self.refresh()
            show()
        await ended
        return self


class JobList(list[AsyncJob]):
    """Jobs, newest first: an HTML table in a notebook, a DataFrame with `to_pandas()`."""

    def _repr_html_(self) -> str:
        return _display.jobs_table([job.data for job in self])

    def to_pandas(self) -> Any:
        """A pandas DataFrame, a row per job and a column per field (pandas is imported only here)."""
        pandas = _optional("pandas", "to_pandas()")

        return pandas.DataFrame([job.data for job in self], columns=list(self[0].data) if self else None)


class AsyncClient:
    """Talks to a tao daemon over its Unix socket or HTTP(S), from asyncio.

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
        token, ca_cert = address.tcp_credentials(self.address, token, ca_cert)
        self._credentials = (token, ca_cert)
        self._session_client: Client | None = None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=self.address.base_url, transport=_transport(self.address, ca_cert), headers=headers, timeout=timeout
        )

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._session_client is not None:
            self._session_client.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def pipelines(self) -> AsyncPipelines:
        """As `Client.pipelines`, awaited: `await client.pipelines.run("flow.yaml")`."""
        from tao_client._pipelines import AsyncPipelines

        return AsyncPipelines(self)

    # -- jobs -------------------------------------------------------------------------------------

    async def submit(
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
        notify: Iterable[str] = (),
        status_file: str | None = None,
        interactive: bool = False,
        tty: bool = False,
        after: Iterable[str] = (),
        after_any: Iterable[str] = (),
        retries: int = 0,
    ) -> AsyncJob:
        """Queue a task run; returns at once. Passing `job_id` makes a retried submission harmless.

        `launch_config` as `Client.submit` takes it: None sends your ~/.tao_mounts.json (or
        $LAUNCHER_MOUNTS) as `tao` does; a dict, a path or what `launch_config.read()` returns sends
        that; False, none. The daemon's warnings come as LaunchWarnings and in `job.warnings`.
        `interactive` keeps the task's input open for `terminal()`; `tty` runs it on a terminal.
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
        return AsyncJob(self, warned(await self._json(_routes.submit(body))))

    async def job(self, job_id: str) -> AsyncJob:
        return AsyncJob(self, await self._json(_routes.job(job_id)))

    async def jobs(self, statuses: Iterable[str] | None = None, container_id: str | None = None, page_size: int = 200) -> JobList:
        """Every matching job, newest first (all pages)."""
        params, found = _routes.listing(statuses, container_id, page_size), JobList()
        while True:
            page = await self._json(_routes.jobs_page(params))
            found.extend(AsyncJob(self, data) for data in page["jobs"])
            if not page["next_cursor"]:
                return found
            params["cursor"] = page["next_cursor"]

    async def cancel(self, job_id: str) -> AsyncJob:
        return AsyncJob(self, await self._json(_routes.cancel(job_id)))

    # -- logs and events --------------------------------------------------------------------------

    async def logs(self, job_id: str, offset: int = 0, tail: int | None = None, attempt: int | None = None) -> bytes:
        """The job's output from byte `offset`; with `tail`, only its last `tail` bytes; with `attempt` (from 1), that attempt's alone."""
        return (await self._request(_routes.logs(job_id, offset, tail, attempt))).content

    async def follow_logs(self, job_id: str, offset: int = 0) -> AsyncIterator[bytes]:
        """The job's output from `offset` as it is written; ends when the job ends."""
        async with self._stream(_routes.follow_logs(job_id, offset)) as response:
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
            except httpx.TransportError as exc:
                raise DaemonUnreachable(self.address.url, _reason(exc)) from None

    async def events(self, job_id: str, after: int = 0) -> dict[str, Any]:
        """{"events": [...], "next_after": N}: pull progress and the like, after event number `after`."""
        return await self._json(_routes.events(job_id, after))

    async def metrics(self, job_id: str) -> Metrics:
        """The job's metric series from its status file, so far; `.to_pandas()` for a DataFrame."""
        return Metrics(await self._json(_routes.metrics(job_id)))

    # -- notifications ----------------------------------------------------------------------------

    async def notify_urls(self) -> list[str]:
        """Your default notification URLs, masked (Client.notify_urls)."""
        return [entry["url"] for entry in (await self._json(_routes.notify_urls()))["urls"]]

    async def notify_add(self, url: str) -> str:
        """Add a default notification URL; returns it masked (Client.notify_add)."""
        answer: str = (await self._json(_routes.notify_add(url)))["url"]
        return answer

    async def notify_remove(self, url: str) -> str:
        """Remove a default notification URL, given whole or masked; returns it masked (Client.notify_remove)."""
        answer: str = (await self._json(_routes.notify_remove(url)))["url"]
        return answer

    async def notify_secret(self) -> str:
        """Your signing secret, made on first use (Client.notify_secret)."""
        answer: str = (await self._json(_routes.notify_secret()))["secret"]
        return answer

    # -- images, registries, the daemon -----------------------------------------------------------

    async def images(self) -> list[dict[str, Any]]:
        return await self._json(_routes.images())

    async def pull(self, tasks: Iterable[str] = (), images: Iterable[str] = ()) -> AsyncIterator[dict[str, Any]]:
        """Progress of pulling the tasks' images: {"type": "progress", ...} and {"type": "done", "image", "error"}."""
        import json

        async with self._stream(_routes.pull(tasks, images)) as response:
            try:
                async for line in response.aiter_lines():
                    if line.strip():
                        yield json.loads(line)
            except httpx.TransportError as exc:
                raise DaemonUnreachable(self.address.url, _reason(exc)) from None

    async def login(self, registry: str, username: str, password: str) -> dict[str, Any]:
        """Check the login with the registry and keep it with the daemon for this user's pulls from there."""
        return await self._json(_routes.login(registry, username, password))

    async def logout(self, registry: str) -> dict[str, Any]:
        return await self._json(_routes.logout(registry))

    async def logins(self) -> list[dict[str, Any]]:
        return await self._json(_routes.logins())

    async def tasks(self) -> dict[str, Any]:
        return await self._json(_routes.tasks())

    async def daemon(self) -> dict[str, Any]:
        """The daemon's process, as `Client.daemon` gives it."""
        return await self._json(_routes.daemon())

    async def info(self, verbose: bool = False) -> dict[str, Any]:
        return await self._json(_routes.info(verbose))

    # -- sessions ---------------------------------------------------------------------------------

    async def terminal(self, job_id: str, offset: int | None = None) -> AsyncTerminal:
        """A session on an interactive job's terminal, as `Client.terminal` gives it, with asyncio calls."""
        from tao_client._terminal import AsyncTerminal

        return AsyncTerminal(await asyncio.to_thread(self._sessions().terminal, job_id, offset))

    async def forward_port(
        self,
        job_id: str,
        remote_port: int,
        local_port: int = 0,
        local_address: str = "127.0.0.1",
        on_error: Callable[[str], None] | None = None,
    ) -> PortForward:
        """Reach `remote_port` inside the running job's container at `local_address`:`local_port` here, until `close()`
        (Client.forward_port: the connections are carried on threads of their own)."""
        return self._sessions().forward_port(job_id, remote_port, local_port, local_address, on_error)

    def _sessions(self) -> Client:
        """A Client on the same daemon, for what goes on sockets of its own (terminals, forwards): made on first use."""
        if self._session_client is None:
            token, ca_cert = self._credentials
            self._session_client = Client(self.address.url, token=token, ca_cert=ca_cert, autostart=False)
        return self._session_client

    # -- plumbing ---------------------------------------------------------------------------------

    async def _json(self, call: Call) -> Any:
        return (await self._request(call)).json()

    async def _request(self, call: Call) -> httpx.Response:
        response = await self._reaching(lambda: self._http.request(call.method, call.path, params=call.params, json=call.json))
        _raise_for_refusal(response, call.method, call.path)
        return response

    def _stream(self, call: Call) -> _Stream:
        return _Stream(self, self._http.build_request(call.method, call.path, params=call.params, json=call.json, timeout=None))

    async def _reaching(self, send: Any) -> httpx.Response:
        """`send()`, starting a local daemon first when nothing answers and that is allowed, as `Client` does."""
        try:
            return await send()
        except httpx.TransportError as exc:
            if not (self._autostart and address.autostart_refusal(self.address) is None and not address.listening(self.address)):
                raise address.unreachable(self.address, _reason(exc)) from None
        from tao_client import local_daemon

        await asyncio.to_thread(local_daemon.autostart, self.address)
        try:
            return await send()
        except httpx.TransportError as exc:
            raise DaemonUnreachable(self.address.url, _reason(exc)) from None


class _Stream:
    """A streamed response, opened (with the client's reconnect rules) on entry, closed on exit."""

    def __init__(self, client: AsyncClient, request: httpx.Request) -> None:
        self._client = client
        self._request = request
        self._response: httpx.Response | None = None

    async def __aenter__(self) -> httpx.Response:
        self._response = await self._client._reaching(lambda: self._client._http.send(self._request, stream=True))
        if not self._response.is_success:
            await self._response.aread()
            await self._response.aclose()
            _raise_for_refusal(self._response, self._request.method, self._request.url.path)
        return self._response

    async def __aexit__(self, *exc: object) -> None:
        if self._response is not None:
            await self._response.aclose()


def _raise_for_refusal(response: httpx.Response, method: str, path: str) -> None:
    if not response.is_success:
        raise api_error(response.status_code, response.content, f"{method} {path}")


def _transport(address: address.Address, ca_cert: str | None) -> httpx.AsyncHTTPTransport:
    if address.socket_path is not None:
        return httpx.AsyncHTTPTransport(uds=address.socket_path)
    # The system's trust store (as `Client` uses), plus the CA bundle given: not httpx's own certifi bundle.
    return httpx.AsyncHTTPTransport(verify=ssl.create_default_context(cafile=ca_cert))


def _reason(exc: httpx.TransportError) -> str:
    """What went wrong, in the words `Client` uses: found on the OS error under httpx's wrapping."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, OSError):
        return _http._describe(cause)
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    return str(exc) or type(exc).__name__


def _optional(module: str, needed_by: str) -> Any:
    """An optional dependency, imported when first needed; a missing one says how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0].lower()
        raise ImportError(f"{needed_by} needs {package}: pip install {package}, or 'tao-launcher[notebook]'") from None

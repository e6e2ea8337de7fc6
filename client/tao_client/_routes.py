"""Every request the SDK makes, built once: its method, path, query and JSON body.

`Client` (HTTP/1.1 on plain sockets) and `AsyncClient` (httpx) both send these, so a route, a
query parameter or a body field is spelled in one place. Standard library only, and cheap to
import: `tao` loads it on every request.
"""

from __future__ import annotations

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any


class Call:
    """One request: `method` `path`, with `params` (the query) and `json` (the body), both optional."""

    __slots__ = ("json", "method", "params", "path")

    def __init__(self, method: str, path: str, params: dict[str, Any] | None = None, json: Any = None) -> None:
        self.method = method
        self.path = path
        self.params = params
        self.json = json

    def __repr__(self) -> str:
        return f"Call({self.method} {self.path})"


# -- jobs -------------------------------------------------------------------------------------------


def submit(body: dict[str, Any]) -> Call:
    return Call("POST", "/v1/jobs", json=body)


def job(job_id: str) -> Call:
    return Call("GET", f"/v1/jobs/{job_id}")


def jobs_page(params: dict[str, Any]) -> Call:
    """A page of `GET /v1/jobs`: `listing(...)` for the first, with its `cursor` for the next."""
    return Call("GET", "/v1/jobs", params=params)


def listing(statuses: Iterable[str] | None, container_id: str | None, page_size: int) -> dict[str, Any]:
    """The query of `GET /v1/jobs`'s first page."""
    params: dict[str, Any] = {"limit": page_size}
    if statuses:
        params["status"] = list(statuses)
    if container_id:
        params["container_id"] = container_id
    return params


def cancel(job_id: str) -> Call:
    return Call("POST", f"/v1/jobs/{job_id}/cancel")


def events(job_id: str, after: int) -> Call:
    return Call("GET", f"/v1/jobs/{job_id}/events", params={"after": after})


def metrics(job_id: str, csv: bool = False) -> Call:
    return Call("GET", f"/v1/jobs/{job_id}/metrics", params={"format": "csv"} if csv else None)


# -- logs -------------------------------------------------------------------------------------------


def logs(job_id: str, offset: int, tail: int | None, attempt: int | None = None) -> Call:
    """The output as it is now: from byte `offset`, or with `tail` only its last `tail` bytes; with `attempt`, of that attempt alone."""
    params: dict[str, Any] = {"offset": offset} if tail is None else {"tail": tail}
    if attempt is not None:
        params["attempt"] = attempt
    return Call("GET", f"/v1/jobs/{job_id}/logs", params=params)


def follow_logs(job_id: str, offset: int) -> Call:
    """The output from `offset` as it is written, a stream that ends when the job ends."""
    return Call("GET", f"/v1/jobs/{job_id}/logs", params={"offset": offset, "follow": "true"})


# -- sessions ---------------------------------------------------------------------------------------


def terminal(job_id: str, offset: int | None) -> Call:
    """The websocket of an interactive job's terminal: its output from `offset` (None: from now), its input."""
    return Call("GET", f"/v1/jobs/{job_id}/terminal", params={} if offset is None else {"offset": offset})


def port(job_id: str, port: int) -> Call:
    """The websocket that carries one TCP connection to `port` inside the job (the way over TCP)."""
    return Call("GET", f"/v1/jobs/{job_id}/ports/{port}")


def port_connection(job_id: str, port: int) -> Call:
    """On the Unix socket: one TCP connection to `port` inside the job, handed over as a file descriptor."""
    return Call("POST", f"/v1/jobs/{job_id}/ports/{port}/connection")


# -- notifications ----------------------------------------------------------------------------------


def notify_urls() -> Call:
    return Call("GET", "/v1/notify/urls")


def notify_add(url: str) -> Call:
    return Call("POST", "/v1/notify/urls", json={"url": url})


def notify_remove(url: str) -> Call:
    return Call("DELETE", "/v1/notify/urls", params={"url": url})


def notify_secret() -> Call:
    return Call("POST", "/v1/notify/secret")


# -- images, registries, the daemon -----------------------------------------------------------------


def images() -> Call:
    return Call("GET", "/v1/images")


def pull(tasks: Iterable[str], images: Iterable[str]) -> Call:
    return Call("POST", "/v1/images/pull", json={"tasks": list(tasks), "images": list(images)})


def login(registry: str, username: str, password: str) -> Call:
    return Call("POST", "/v1/credentials", json={"registry": registry, "username": username, "password": password})


def logout(registry: str) -> Call:
    return Call("DELETE", f"/v1/credentials/{registry}")


def logins() -> Call:
    return Call("GET", "/v1/credentials")


def tasks() -> Call:
    return Call("GET", "/v1/tasks")


def info(verbose: bool) -> Call:
    return Call("GET", "/v1/info", params={"verbose": verbose})


def daemon() -> Call:
    return Call("GET", "/v1/daemon")


def dashboard_link() -> Call:
    """A one-time link that signs this caller in to the dashboard (the Unix socket only)."""
    return Call("POST", "/ui/links")


# -- a submission's body ----------------------------------------------------------------------------


def submission(
    task: str,
    subtask: str | None,
    args: Iterable[str],
    group: str | None,
    launch_config: Any,
    launch_config_source: str | None,
    gpus: str,
    gpu_indices: list[str] | None,
    job_id: str | None,
    pull: str | None,
    nodes: int | None,
    time: str | None,
    notify: Iterable[str] = (),
    status_file: str | None = None,
    interactive: bool = False,
    tty: bool = False,
    after: Iterable[str] = (),
    after_any: Iterable[str] = (),
    retries: int = 0,
) -> dict[str, Any]:
    """The body of `POST /v1/jobs`: the options given, and nothing for those left out (the daemon's defaults).

    The launcher config is read here (launch_config.for_submission), so every client sends the same.
    """
    from tao_client.launch_config import for_submission

    body: dict[str, Any] = {"task": task, "subtask": subtask, "args": list(args), "group": group, "gpus": gpus}
    if pull is not None:
        body["pull"] = pull
    config, source = for_submission(launch_config, launch_config_source)
    if config is not None:
        body["launch_config"] = config
        body["launch_config_source"] = source
    if gpu_indices:
        body["gpu_indices"] = gpu_indices
    optional = {"id": job_id, "nodes": nodes, "time": time, "status_file": status_file}
    body.update({key: value for key, value in optional.items() if value is not None})
    if notify := list(notify):
        body["notify"] = notify
    body.update({key: True for key, value in (("interactive", interactive), ("tty", tty)) if value})
    body.update({key: list(ids) for key, ids in (("after", after), ("after_any", after_any)) if ids})
    if retries:
        body["retries"] = retries
    return body


# -- pipelines --------------------------------------------------------------------------------------


def pipeline_body(text: str, source: str, launch_config: Any, notify: Iterable[str] = (), pull: str | None = None) -> dict[str, Any]:
    """The body of `POST /v1/pipelines`: the file's text as written (the daemon reads it, so every client gets its checks)."""
    from tao_client.launch_config import for_submission

    body: dict[str, Any] = {"text": text, "source": source}
    config, config_source = for_submission(launch_config, None)
    if config is not None:
        body["launch_config"] = config
        body["launch_config_source"] = config_source
    if notify := list(notify):
        body["notify"] = notify
    if pull is not None:
        body["pull"] = pull
    return body


def run_pipeline(body: dict[str, Any]) -> Call:
    return Call("POST", "/v1/pipelines", json=body)


def pipelines() -> Call:
    return Call("GET", "/v1/pipelines")


def pipeline(pipeline_id: str) -> Call:
    return Call("GET", f"/v1/pipelines/{pipeline_id}")


def stop_pipeline(pipeline_id: str) -> Call:
    return Call("POST", f"/v1/pipelines/{pipeline_id}/stop")


# -- sweeps -----------------------------------------------------------------------------------------


def start_sweep(body: dict[str, Any]) -> Call:
    return Call("POST", "/v1/sweeps", json=body)


def sweeps() -> Call:
    return Call("GET", "/v1/sweeps")


def sweep(sweep_id: str) -> Call:
    return Call("GET", f"/v1/sweeps/{sweep_id}")


def stop_sweep(sweep_id: str) -> Call:
    return Call("POST", f"/v1/sweeps/{sweep_id}/stop")

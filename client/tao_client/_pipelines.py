"""`client.pipelines`: pipeline files run as one submission, listed, shown and stopped (sync and async).

The file's text goes to the daemon as written: the daemon reads and checks it, so a notebook and
`tao pipeline run` get the same errors, each naming the file's line, column and key.
"""

from __future__ import annotations

import os
import time

from tao_client import _routes

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from tao_client._async import AsyncClient
    from tao_client.client import Client

ENDED = ("succeeded", "failed", "cancelled")
WAIT_INTERVAL = 0.5


class Pipeline:
    """A pipeline as the daemon last reported it: `id`, `status`, `exit_code`, and `steps` (each with its `job_id`)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def status(self) -> str:
        return str(self.data["status"])

    @property
    def exit_code(self) -> int | None:
        code = self.data.get("exit_code")
        return int(code) if code is not None else None

    @property
    def steps(self) -> list[dict[str, Any]]:
        return list(self.data["steps"])

    @property
    def done(self) -> bool:
        return self.status in ENDED

    def __repr__(self) -> str:
        return f"Pipeline({self.id!r}, {self.status}, steps={[step['name'] for step in self.steps]})"


def _body(file: str | os.PathLike[str], text: str | None, launch_config: Any, notify: Iterable[str], pull: str | None) -> dict[str, Any]:
    source = os.fspath(file)
    if text is None:
        with open(source, encoding="utf-8") as handle:
            text = handle.read()
    return _routes.pipeline_body(text, source, launch_config, notify, pull)


class Pipelines:
    """What `Client.pipelines` offers."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def run(
        self,
        file: str | os.PathLike[str],
        *,
        text: str | None = None,
        launch_config: Any = None,
        notify: Iterable[str] = (),
        pull: str | None = None,
    ) -> Pipeline:
        """Submit the pipeline file at `file` (or `text`, named `file` in messages); returns once its steps are recorded.

        `launch_config` as `Client.submit` takes it: None sends your ~/.tao_mounts.json, applied to every step.
        """
        body = _body(file, text, launch_config, notify, pull)
        return Pipeline(self._client._json(_routes.run_pipeline(body)))

    def get(self, pipeline_id: str) -> Pipeline:
        return Pipeline(self._client._json(_routes.pipeline(pipeline_id)))

    def list(self) -> list[Pipeline]:
        """Your pipelines (everyone's for an admin), newest first."""
        return [Pipeline(data) for data in self._client._json(_routes.pipelines())["pipelines"]]

    def stop(self, pipeline_id: str) -> Pipeline:
        """Cancel every step that has not ended."""
        return Pipeline(self._client._json(_routes.stop_pipeline(pipeline_id)))

    def wait(self, pipeline_id: str, timeout: float | None = None) -> Pipeline:
        """The pipeline once every step has ended; TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not (pipeline := self.get(pipeline_id)).done:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"pipeline {pipeline_id} is still {pipeline.status} after {timeout} s")
            time.sleep(WAIT_INTERVAL)
        return pipeline


class AsyncPipelines:
    """What `AsyncClient.pipelines` offers: as `Pipelines`, awaited."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def run(
        self,
        file: str | os.PathLike[str],
        *,
        text: str | None = None,
        launch_config: Any = None,
        notify: Iterable[str] = (),
        pull: str | None = None,
    ) -> Pipeline:
        body = _body(file, text, launch_config, notify, pull)
        return Pipeline(await self._client._json(_routes.run_pipeline(body)))

    async def get(self, pipeline_id: str) -> Pipeline:
        return Pipeline(await self._client._json(_routes.pipeline(pipeline_id)))

    async def list(self) -> list[Pipeline]:
        return [Pipeline(data) for data in (await self._client._json(_routes.pipelines()))["pipelines"]]

    async def stop(self, pipeline_id: str) -> Pipeline:
        return Pipeline(await self._client._json(_routes.stop_pipeline(pipeline_id)))

    async def wait(self, pipeline_id: str, timeout: float | None = None) -> Pipeline:
        import asyncio

        deadline = None if timeout is None else time.monotonic() + timeout
        while not (pipeline := await self.get(pipeline_id)).done:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"pipeline {pipeline_id} is still {pipeline.status} after {timeout} s")
            await asyncio.sleep(WAIT_INTERVAL)
        return pipeline

"""`Client.sweeps`: start, list, show and stop hyperparameter sweeps; a sweep's trials as a pandas DataFrame.

    sweep = Client().sweeps.run("sweep.yaml")        # a path, the file's text, or a dict of it
    sweep.wait()                                     # until every trial has ended
    sweep.best                                       # {"number", "value", "params", "command"}
    sweep.trials_frame()                             # a row per trial: number, state, value, job, params_NAME...

The sweep file is read by the daemon (it names the line and key of a mistake); your launcher
config (~/.tao_mounts.json) goes with it, as with `Client.submit`.
"""

from __future__ import annotations

import json
import os
import time

from tao_client import _routes

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import Any

    from tao_client.client import Client

WAIT_INTERVAL = 1.0


class Sweep:
    """A sweep as the daemon last showed it (`refresh()` asks again)."""

    def __init__(self, sweeps: Sweeps, data: dict[str, Any]) -> None:
        self._sweeps = sweeps
        self.data = data

    def __repr__(self) -> str:
        return f"Sweep({self.id!r}, {self.state}, {len(self.trials)} trials)"

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def state(self) -> str:
        return str(self.data["state"])

    @property
    def done(self) -> bool:
        return self.state != "running"

    @property
    def trials(self) -> list[dict[str, Any]]:
        return list(self.data["trials"])

    @property
    def best(self) -> dict[str, Any] | None:
        best: dict[str, Any] | None = self.data.get("best")
        return best

    def refresh(self) -> Sweep:
        self.data = self._sweeps.get(self.id).data
        return self

    def stop(self) -> Sweep:
        self.data = self._sweeps.stop(self.id).data
        return self

    def wait(self, timeout: float | None = None, interval: float = WAIT_INTERVAL) -> Sweep:
        """Until the sweep has ended (every trial, or stopped); TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.refresh().done:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"sweep {self.id} still running after {timeout} s")
            time.sleep(interval)
        return self

    def trials_frame(self):  # type: ignore[no-untyped-def]
        """The trials as a pandas DataFrame: number, state, value, job, epochs, error, and a params_NAME column per parameter."""
        import pandas

        rows = []
        for trial in self.trials:
            row = {key: trial.get(key) for key in ("number", "state", "value", "job", "epochs", "error")}
            row.update({f"params_{name}": value for name, value in trial["params"].items()})
            rows.append(row)
        return pandas.DataFrame(rows)


class Sweeps:
    """What `Client.sweeps` gives."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def run(
        self, sweep: str | os.PathLike[str] | dict[str, Any], *, launch_config: Any = None, launch_config_source: str | None = None
    ) -> Sweep:
        """Start a sweep: `sweep` is a sweep file's path, its text (YAML), or a dict of it. Returns at once."""
        from tao_client.launch_config import for_submission

        text, source = _file(sweep)
        body: dict[str, Any] = {"file": text, "source": source}
        config, config_source = for_submission(launch_config, launch_config_source)
        if config is not None:
            body["launch_config"] = config
            body["launch_config_source"] = config_source
        started = self._client._json(_routes.start_sweep(body))
        return Sweep(self, started["sweep"] | {"warnings": started.get("warnings", [])})

    def list(self) -> list[dict[str, Any]]:
        """Your sweeps (every sweep for an admin), newest first: id, state, source, kpi, trials_asked, created_at."""
        return list(self._client._json(_routes.sweeps())["sweeps"])

    def get(self, sweep_id: str) -> Sweep:
        return Sweep(self, self._client._json(_routes.sweep(sweep_id)))

    def stop(self, sweep_id: str) -> Sweep:
        return Sweep(self, self._client._json(_routes.stop_sweep(sweep_id)))


def _file(sweep: str | os.PathLike[str] | dict[str, Any]) -> tuple[str, str | None]:
    """(the file's text, its name): a dict is sent as JSON, which the daemon reads as YAML."""
    if isinstance(sweep, dict):
        return json.dumps(sweep), None
    if isinstance(sweep, str) and "\n" in sweep:
        return sweep, None
    path = os.fspath(sweep)
    with open(path, encoding="utf-8") as file:
        return file.read(), path

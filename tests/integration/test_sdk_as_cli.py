"""The SDK submits as `tao` does: the same ~/.tao_mounts.json read by default, the same checks, the same job.

One submission goes through the installed `tao`, through `Client` and through `AsyncClient`, from one
HOME with one launcher config, against one real daemon; the jobs must be the same, their results
on the host the same, and their refusals and warnings word for word the same.
"""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any

import pytest

from tao_client import AsyncClient, Client, LaunchWarning, launch_config
from tao_client._errors import ApiError
from tao_server.testing.daemon import Daemon
from tests.integration.conftest import write_mounts

pytestmark = pytest.mark.integration


def same_job(job: dict[str, Any]) -> dict[str, Any]:
    """What must be the same of two runs of one submission: all but the results dir they were given (the last argument)."""
    return {
        "mounts": job["mounts"],
        "envs": job["envs"],
        "docker_options": job["docker_options"],
        "image": job["image"],
        "command": job["command"][:-1],
    }


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME whose ~/.tao_mounts.json mounts a dir with a spec at /workspace/tao-experiments, for `tao` and this process."""
    home = tmp_path / "home"
    (home / "tao" / "specs").mkdir(parents=True)
    (home / "tao" / "specs" / "train.txt").write_text("model_config {}\n")
    config = {
        "Mounts": [{"source": str(home / "tao"), "destination": "/workspace/tao-experiments"}],
        "Envs": [{"variable": "CUDA_DEVICE_ORDER", "value": "PCI_BUS_ID"}],
        "DockerOptions": {"shm_size": "128M"},
    }
    write_mounts(home / ".tao_mounts.json", config)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("LAUNCHER_MOUNTS", raising=False)
    return home


def train(results: str) -> list[str]:
    return ["-e", "/workspace/tao-experiments/specs/train.txt", "-r", results]


def submit_async(daemon: Daemon, args: list[str], **options: Any) -> tuple[Any, list[str]]:
    """Submit with AsyncClient and wait for the job's end: (its data, or the ApiError it was refused with; the warnings said)."""

    async def main() -> Any:
        async with AsyncClient(daemon.address, autostart=False) as client:
            try:
                return (await (await client.submit("detectnet_v2", "train", args, **options))).data
            except ApiError as refused:
                return refused

    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always", LaunchWarning)
        answer = asyncio.run(main())
    return answer, [str(warning.message) for warning in said]


def submit_sync(daemon: Daemon, args: list[str], **options: Any) -> tuple[Any, list[str]]:
    """As submit_async, with Client."""
    with warnings.catch_warnings(record=True) as said, Client(daemon.address, autostart=False) as client:
        warnings.simplefilter("always", LaunchWarning)
        try:
            answer: Any = client.submit("detectnet_v2", "train", args, **options).wait().data
        except ApiError as refused:
            answer = refused
    return answer, [str(warning.message) for warning in said]


def test_tao_client_and_async_client_run_the_same_job_from_the_users_launcher_config(daemon: Daemon, home: Path) -> None:
    cli = daemon.tao(
        "--id", "parity-cli", "detectnet_v2", "train", *train("/workspace/tao-experiments/results/cli"), env=daemon.env(HOME=str(home))
    )
    assert (cli.returncode, cli.stderr) == (0, b""), cli.stderr
    sync, said_sync = submit_sync(daemon, train("/workspace/tao-experiments/results/sync"))
    in_notebook, said_async = submit_async(daemon, train("/workspace/tao-experiments/results/async"))
    assert said_sync == said_async == []

    jobs = [daemon.job("parity-cli"), sync, in_notebook]
    assert [job["status"] for job in jobs] == ["succeeded"] * 3
    assert jobs[0]["mounts"] == [{"source": str(home / "tao"), "destination": "/workspace/tao-experiments", "read_only": False}]
    assert jobs[0]["docker_options"]["shm_size"] == 128 * 1024**2
    assert same_job(jobs[0]) == same_job(sync) == same_job(in_notebook)
    for name in ("cli", "sync", "async"):
        assert (home / "tao" / "results" / name / "model.tlt").read_text() == "weights of detectnet_v2\n"


def test_launch_config_takes_a_dict_a_path_what_read_returns_or_false(daemon: Daemon, home: Path) -> None:
    path = home / ".tao_mounts.json"
    results = "/workspace/tao-experiments/results/given"
    for given in (path, str(path), launch_config.read(path), launch_config.read(path)[0]):
        job, said = submit_sync(daemon, train(results), launch_config=given)
        assert job["status"] == "succeeded" and job["mounts"][0]["source"] == str(home / "tao") and said == []
    without, said = submit_sync(daemon, ["-r", "/workspace/tao-experiments/results"], launch_config=False)
    assert without["mounts"] == [] and without["envs"] == {}
    assert said == [
        "-r /workspace/tao-experiments/results: the results dir is outside every mount, so its files are lost with the container; "
        "the job mounts nothing: mount a host dir at /workspace/tao-experiments/results (Mounts in the launcher config)"
    ]


def test_the_same_mistakes_are_refused_and_warned_of_alike(daemon: Daemon, home: Path) -> None:
    host_path = ["-e", str(home / "tao" / "specs" / "train.txt")]
    cli = daemon.tao("detectnet_v2", "train", *host_path, env=daemon.env(HOME=str(home)))
    sync, _ = submit_sync(daemon, host_path)
    in_notebook, _ = submit_async(daemon, host_path)
    assert cli.returncode == 125
    for refused in (sync, in_notebook):
        assert isinstance(refused, ApiError) and (refused.code, refused.field) == ("host_path_argument", "args[1]")
        assert cli.stderr.decode() == f"tao: error: {refused.message}\n"
    assert "is /workspace/tao-experiments/specs/train.txt inside the container" in cli.stderr.decode()

    lost = train("/results")
    cli = daemon.tao("detectnet_v2", "train", *lost, env=daemon.env(HOME=str(home)))
    sync, said_sync = submit_sync(daemon, lost)
    in_notebook, said_async = submit_async(daemon, lost)
    assert cli.returncode == 0 and sync["status"] == in_notebook["status"] == "succeeded"
    assert said_sync == said_async and len(said_sync) == 1
    assert cli.stderr.decode() == f"tao: warning: {said_sync[0]}\n"
    assert said_sync[0].startswith("-r /results: the results dir is outside every mount")
    with Client(daemon.address, autostart=False) as client, warnings.catch_warnings():
        warnings.simplefilter("ignore", LaunchWarning)
        assert client.submit("detectnet_v2", "train", lost).warnings == said_sync  # also on the job, for who reads no warnings

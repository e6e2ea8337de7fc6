"""A real daemon started on the previous release's data dir (tests/previous_release.py), driven with `tao`.

The in-process tests (tests/inprocess/test_upgrade.py) check the same facts through the API; this
checks them the way a user would after installing the new release on the old data dir: the
installed `tao-server` migrates it, `tao` lists and reads the old jobs, an old token still works
over TCP, and new jobs run on the real engine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tao_server.testing.daemon import Daemon
from tests.integration.conftest import free_port
from tests.previous_release import PreviousRelease, previous_release_data_dir

pytestmark = pytest.mark.integration


@pytest.fixture
def release(tmp_path: Path) -> PreviousRelease:
    return previous_release_data_dir(tmp_path / "upgraded" / "data")


@pytest.fixture
def upgraded(new_daemon, release: PreviousRelease) -> Daemon:  # type: ignore[no-untyped-def]
    port = free_port()
    daemon: Daemon = new_daemon("--host", "127.0.0.1", "--port", str(port), root=release.data_dir.parent).start()
    daemon.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return daemon


def _token_env(daemon: Daemon, token: str) -> dict[str, str]:
    return daemon.env(TAO_HOST=daemon.url, TAO_TOKEN=token)  # type: ignore[attr-defined]


def _listed(daemon: Daemon, env: dict[str, str] | None = None) -> dict[str, dict]:  # type: ignore[type-arg]
    done = daemon.tao("list", "--all", "--json", env=env)
    assert done.returncode == 0, done.stderr
    return {job["id"]: job for job in json.loads(done.stdout)}


def test_tao_lists_and_reads_every_job_of_the_previous_release(upgraded: Daemon, release: PreviousRelease) -> None:
    listed = _listed(upgraded)
    assert sorted(listed) == sorted(job.id for job in release.jobs)
    for job in release.jobs:
        assert {key: listed[job.id][key] for key in job.fields} == job.fields
        assert upgraded.tao("logs", job.id).stdout == job.log


def test_an_old_token_works_over_tcp_and_runs_new_jobs_as_its_user(upgraded: Daemon, release: PreviousRelease) -> None:
    env = _token_env(upgraded, release.token)
    assert sorted(_listed(upgraded, env)) == sorted(job.id for job in release.jobs_of(release.token_uid))
    ran = upgraded.tao("--gpus", "none", "unet", "id", env=env)
    assert (ran.returncode, ran.stdout) == (0, f"uid={release.token_uid} gid={release.token_gid}\n".encode())


def test_new_jobs_run_on_the_engine_beside_the_old_ones(upgraded: Daemon, release: PreviousRelease) -> None:
    ran = upgraded.tao("detectnet_v2", "exit", "3")
    assert (ran.returncode, ran.stdout) == (3, b"exiting with 3\n")
    assert len(_listed(upgraded)) == len(release.jobs) + 1

"""The app started on a data dir the previous release wrote (tests/previous_release.py): it upgrades it and loses nothing.

The database and logs were written by the previous release's own daemon, not by this code's
models, so a migration that forgets how an older row looks fails here.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from tao_server import db
from tests.inprocess.conftest import Caller, Daemon
from tests.previous_release import PreviousRelease, previous_release_data_dir


@pytest.fixture
def release(tmp_path: Path) -> PreviousRelease:
    return previous_release_data_dir(tmp_path / "previous-release")


@pytest.fixture
def upgraded(start_daemon: Callable[..., Daemon], release: PreviousRelease) -> Daemon:
    return start_daemon(data_dir=release.data_dir)


def head_revision() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(db.migrations_dir()))
    return ScriptDirectory.from_config(config).get_current_head()


def revision_of(data_dir: Path) -> str:
    with contextlib.closing(sqlite3.connect(data_dir / db.FILE_NAME)) as connection:
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(revision)


def test_the_fixture_is_a_database_behind_the_newest_revision(release: PreviousRelease) -> None:
    assert revision_of(release.data_dir) == release.schema_revision
    assert release.schema_revision != head_revision()


def test_starting_on_it_brings_the_database_to_the_newest_revision(upgraded: Daemon, release: PreviousRelease) -> None:
    assert revision_of(release.data_dir) == head_revision()


def test_every_job_is_listed_as_the_previous_release_showed_it(upgraded: Daemon, release: PreviousRelease) -> None:
    listed = {job["id"]: job for job in upgraded.admin.get("/v1/jobs", params={"limit": 100}).json()["jobs"]}
    assert sorted(listed) == sorted(job.id for job in release.jobs)
    for job in release.jobs:
        assert {key: listed[job.id][key] for key in job.fields} == job.fields


def test_every_job_keeps_its_status_and_exit_code(upgraded: Daemon, release: PreviousRelease) -> None:
    shown = {job.id: upgraded.admin.job(job.id) for job in release.jobs}
    assert {job_id: (job["status"], job["exit_code"]) for job_id, job in shown.items()} == {
        job.id: (job.fields["status"], job.fields["exit_code"]) for job in release.jobs
    }
    assert {job["status"] for job in shown.values()} >= {"succeeded", "failed", "cancelled"}


def test_every_job_s_log_reads_back_whole(upgraded: Daemon, release: PreviousRelease) -> None:
    for job in release.jobs:
        log = upgraded.admin.logs(job.id)
        assert log == job.log
        assert log.decode().splitlines()[0] == job.first_line


def test_a_token_the_previous_release_made_still_authenticates_as_its_user(upgraded: Daemon, release: PreviousRelease) -> None:
    caller = Caller(upgraded.client, release.token)
    listed = caller.get("/v1/jobs").json()["jobs"]
    assert [job["id"] for job in listed] == [job.id for job in release.jobs_of(release.token_uid)]
    assert caller.logs(listed[0]["id"]) == release.job(listed[0]["id"]).log


def test_a_token_from_before_scopes_is_a_users_api_token(upgraded: Daemon, release: PreviousRelease) -> None:
    caller = Caller(upgraded.client, release.token)
    assert caller.get("/v1/jobs").status_code == 200
    assert caller.get("/metrics").json()["error"]["code"] == "not_allowed"  # not a scrape token, and no admin
    (row,) = [token for token in upgraded.client.app.state.services.tokens.list() if release.token.startswith(f"tao_{token.id}_")]  # type: ignore[attr-defined]
    assert (row.scope, row.uid, row.gid) == ("api", release.token_uid, release.token_gid)


def test_a_wrong_token_is_still_refused(upgraded: Daemon, release: PreviousRelease) -> None:
    forged = release.token[:-4] + ("AAAA" if not release.token.endswith("AAAA") else "BBBB")
    assert Caller(upgraded.client, forged).get("/v1/jobs").status_code == 401


def test_new_jobs_run_beside_the_old_ones(upgraded: Daemon, release: PreviousRelease) -> None:
    new = upgraded.alice.submit("detectnet_v2", "exit", "0")
    assert new["id"] not in {job.id for job in release.jobs}
    assert upgraded.alice.wait_for(new["id"], "succeeded")["exit_code"] == 0
    assert upgraded.alice.logs(new["id"]) == b"exiting with 0\n"
    listed = upgraded.admin.get("/v1/jobs", params={"limit": 100}).json()["jobs"]
    assert len(listed) == len(release.jobs) + 1


def test_the_old_token_submits_new_jobs_as_its_user(upgraded: Daemon, release: PreviousRelease) -> None:
    caller = Caller(upgraded.client, release.token)
    new = caller.submit("unet", "id")
    assert caller.wait_for(new["id"], "succeeded")["owner_uid"] == release.token_uid
    assert len(caller.get("/v1/jobs").json()["jobs"]) == len(release.jobs_of(release.token_uid)) + 1

"""A data dir as the previous release left it, for tests that start this code on it and expect an upgrade.

tests/fixtures/previous-release holds what scripts/make_db_fixture.py had the previous release's own
daemon write (its SQLite file and job logs) and fixture.json, what that daemon said about it: the
commit, the schema revision, a token it made, and each job as its API showed it. Remake it with
`scripts/make_db_fixture.py [COMMIT]`.

    release = previous_release_data_dir(tmp_path / "data")   # then start a daemon on that data dir
    release.jobs[0].fields["status"], release.jobs[0].log, release.token

Anything can use it that starts a daemon on a data dir it can fill: the in-process app, a daemon
process, a daemon in a container whose data volume the copy goes into.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "previous-release"
RECORD = "fixture.json"
# What fixture.json says of a job's log rather than of the job the API shows.
_LOG_FACTS = ("log_bytes", "first_line")


@dataclass(frozen=True)
class ReleaseJob:
    """A job the previous release ran: the fields its API showed, and its whole log."""

    fields: dict[str, Any]  # id, task, subtask, args, status, exit_code, owner_uid, owner_gid, gpu_request, gpus, mounts, envs
    log: bytes
    first_line: str

    @property
    def id(self) -> str:
        return str(self.fields["id"])


@dataclass(frozen=True)
class PreviousRelease:
    """The copied data dir, and what the previous release's daemon held in it."""

    data_dir: Path
    commit: str
    schema_revision: str
    token: str  # a bearer token the previous release made, for `token_user`
    token_user: str
    token_uid: int
    token_gid: int
    jobs: list[ReleaseJob]  # oldest first

    def job(self, job_id: str) -> ReleaseJob:
        return next(job for job in self.jobs if job.id == job_id)

    def jobs_of(self, uid: int) -> list[ReleaseJob]:
        return [job for job in self.jobs if job.fields["owner_uid"] == uid]


def previous_release_data_dir(dest: Path) -> PreviousRelease:
    """Copy the previous release's data dir into `dest` (made if missing; it must hold no database yet)."""
    record = json.loads((FIXTURE / RECORD).read_text())
    dest.mkdir(parents=True, exist_ok=True)
    for path in FIXTURE.iterdir():
        if path.is_dir():
            shutil.copytree(path, dest / path.name, dirs_exist_ok=True)
        elif path.name != RECORD:
            if (dest / path.name).exists():
                raise FileExistsError(f"{dest / path.name} exists: the daemon would not read the previous release's data")
            shutil.copy2(path, dest / path.name)
    return _release(dest, record)


def _release(data_dir: Path, record: dict[str, Any]) -> PreviousRelease:
    token = record["token"]
    return PreviousRelease(
        data_dir=data_dir,
        commit=record["commit"],
        schema_revision=record["schema_revision"],
        token=token["secret"],
        token_user=token["user"],
        token_uid=token["uid"],
        token_gid=token["gid"],
        jobs=[_job(job) for job in record["jobs"]],
    )


def _job(recorded: dict[str, Any]) -> ReleaseJob:
    fields = {key: value for key, value in recorded.items() if key not in _LOG_FACTS}
    log = (FIXTURE / "logs" / f"{fields['id']}.log").read_bytes()
    if len(log) != recorded["log_bytes"]:
        # The record and the log were written together: a log edited since is a broken fixture, not an upgrade bug.
        raise ValueError(f"{FIXTURE}/logs/{fields['id']}.log is {len(log)} bytes; {RECORD} says {recorded['log_bytes']}")
    return ReleaseJob(fields=fields, log=log, first_line=recorded["first_line"])

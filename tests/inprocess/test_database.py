"""The job database watched under a running daemon (runtime/db_watch.py), and a start on a database that
does not know the runs labelled as the daemon's: nothing is lost unseen, nothing removed unaccounted."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable

from tao_server.backends import LaunchSpec
from tao_server.testing.fake_backend import FakeBackend
from tao_server.testing.fake_engine import FakeEngine
from tests.inprocess.conftest import IMAGE, Daemon


def test_a_database_deleted_under_the_daemon_stops_new_work_and_says_so(daemon: Daemon, engine: FakeEngine) -> None:
    running = daemon.alice.submit("detectnet_v2", "hold", "deleted")
    daemon.alice.wait_for(running["id"], "running")
    db = daemon.settings.db_path
    assert daemon.client.get("/healthz").json() == {"status": "ok"}
    os.remove(db)

    refused = daemon.alice.post("/v1/jobs", json={"task": "detectnet_v2", "subtask": "exit", "args": ["0"]})
    assert refused.status_code == 507
    error = refused.json()["error"]
    assert error["code"] == "database_gone" and f"the job database {db} was deleted while the daemon ran" in error["message"]
    assert {p.stem for p in daemon.settings.logs_dir.iterdir()} == {running["id"]}  # the refused job left no file
    health = daemon.client.get("/healthz").json()
    assert health["status"] == "failing" and str(db) in health["database"]
    assert "was deleted" in daemon.alice.get("/v1/info").json()["daemon"]["database_error"]
    cancel = daemon.alice.post(f"/v1/jobs/{running['id']}/cancel")
    assert (cancel.status_code, cancel.json()["error"]["code"]) == (507, "database_gone")

    engine.release("deleted")  # the running job goes on, and its end is shown, though it cannot be written
    assert daemon.alice.wait_for(running["id"], "succeeded")["exit_code"] == 0
    assert not db.exists()  # nothing wrote a new, empty file in its place


def test_a_database_replaced_under_the_daemon_is_noticed_and_stays_so(daemon: Daemon) -> None:
    db = daemon.settings.db_path
    copy = db.with_name("restored.db")
    shutil.copyfile(db, copy)
    os.replace(copy, db)  # a restore copied over it: another file at the same path
    refused = daemon.alice.post("/v1/jobs", json={"task": "detectnet_v2", "subtask": "exit", "args": ["0"]})
    assert refused.status_code == 507 and "was replaced by another file" in refused.json()["error"]["message"]
    assert daemon.client.get("/healthz").json()["status"] == "failing"


def test_a_start_on_a_database_that_does_not_know_a_running_run_leaves_it_running_and_reports_it(
    start_daemon: Callable[..., Daemon], engine: FakeEngine
) -> None:
    first = start_daemon()
    job = first.alice.submit("detectnet_v2", "hold", "unknown")
    first.alice.wait_for(job["id"], "running")
    first.stop()
    os.remove(first.settings.db_path)  # lost while the daemon was down (or deleted under it, then a restart)

    second = start_daemon()
    assert engine.running() == [job["id"]]  # not removed: the table cannot account for it
    [unaccounted] = second.admin.get("/v1/info").json()["daemon"]["unaccounted_runs"]
    assert (unaccounted["job_id"], unaccounted["state"]) == (job["id"], "active")
    assert "unaccounted_runs" not in second.alice.get("/v1/info").json()["daemon"]  # an admin's matter
    assert second.client.get("/healthz").json() == {"status": "ok"}  # a new database, watched from here
    engine.release("unknown")
    _until(lambda: engine.running() == [], "the run ends by itself")
    assert engine.runs() == [job["id"]]  # and stays, ended, for an admin to look at and remove


def test_runs_of_jobs_that_ended_are_released_at_start(start_daemon: Callable[..., Daemon], engine: FakeEngine) -> None:
    first = start_daemon()
    job = first.alice.submit("detectnet_v2", "exit", "0")
    first.alice.wait_for(job["id"], "succeeded")
    first.wait_until_released()
    first.stop()
    leftover = FakeBackend(engine, first.backend.daemon_id).prepare(LaunchSpec(job["id"], IMAGE, ["detectnet_v2", "exit", "0"]))
    assert engine.runs() == [job["id"]]  # as a release the old daemon could not finish would leave it
    start_daemon()
    assert engine.runs() == []
    del leftover


def _until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.005)

"""The runner in process: the GPU line, restarts that adopt what the backend still runs, and failures."""

from __future__ import annotations

import sqlite3

from tests.inprocess.conftest import Daemon


def test_gpu_jobs_wait_in_line_first_come_first_served(start_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon: Daemon = start_daemon(gpus="0,1")
    both = daemon.admin.submit("detectnet_v2", "hold", "both", gpus="2")
    daemon.admin.wait_for(both["id"], "running")
    one = daemon.admin.submit("detectnet_v2", "exit", "0", gpus="1")
    two = daemon.admin.submit("detectnet_v2", "exit", "0", gpus="2")
    assert daemon.admin.job(one["id"])["gpu_queue_position"] == 1
    assert daemon.admin.job(two["id"])["gpu_queue_position"] == 2
    no_gpu = daemon.admin.submit("detectnet_v2", "exit", "0", gpus="none")  # needs no GPU: never waits for them
    assert daemon.admin.wait_for(no_gpu["id"], "succeeded")["gpus"] == []
    daemon.engine.release("both")
    assert daemon.admin.wait_for(one["id"], "succeeded")["gpus"] in (["0"], ["1"])
    assert daemon.admin.wait_for(two["id"], "succeeded")["gpus"] == ["0", "1"]
    assert all(spec.devices for spec in daemon.engine.launched if spec.job_id != no_gpu["id"])


def test_a_restarted_daemon_adopts_a_running_job_and_keeps_every_byte(start_daemon) -> None:  # type: ignore[no-untyped-def]
    first: Daemon = start_daemon()
    job = first.admin.submit("detectnet_v2", "hold", "restart")
    first.admin.wait_for_logs(job["id"], b"holding restart\n")
    first.stop()
    assert first.engine.running() == [job["id"]]  # the run outlives the daemon

    second: Daemon = start_daemon()
    assert second.admin.job(job["id"])["status"] == "running"
    second.engine.release("restart")
    done = second.admin.wait_for(job["id"], "succeeded")
    assert done["exit_code"] == 0
    assert second.admin.logs(job["id"]) == b"holding restart\nreleased restart\n"  # neither lost nor written twice
    second.wait_until_released()


def test_a_job_that_ended_while_the_daemon_was_down_gets_its_exit_code(start_daemon) -> None:  # type: ignore[no-untyped-def]
    first: Daemon = start_daemon()
    job = first.admin.submit("detectnet_v2", "hold", "down")
    first.admin.wait_for_logs(job["id"], b"holding down\n")
    first.stop()
    first.engine.release("down")  # prints and ends with nobody watching

    second: Daemon = start_daemon()
    done = second.admin.wait_for(job["id"], "succeeded")
    assert done["exit_code"] == 0
    assert second.admin.logs(job["id"]) == b"holding down\nreleased down\n"  # what it printed meanwhile too


def test_queued_jobs_start_after_a_restart(start_daemon) -> None:  # type: ignore[no-untyped-def]
    first: Daemon = start_daemon(max_running_jobs=1)
    blocker = first.admin.submit("detectnet_v2", "hold", "first")
    first.admin.wait_for(blocker["id"], "running")
    queued = first.admin.submit("detectnet_v2", "exit", "7")
    first.stop()

    second: Daemon = start_daemon(max_running_jobs=1)
    second.engine.release("first")
    assert second.admin.wait_for(blocker["id"], "succeeded")["exit_code"] == 0
    assert second.admin.wait_for(queued["id"], "failed")["exit_code"] == 7


def test_a_cancel_asked_before_a_restart_is_finished_after_it(start_daemon) -> None:  # type: ignore[no-untyped-def]
    first: Daemon = start_daemon()
    job = first.admin.submit("detectnet_v2", "stubborn", "600")
    first.admin.wait_for(job["id"], "running")
    first.stop()
    # The table says a stop was asked of the old daemon, which went away before it could act on it.
    with sqlite3.connect(first.settings.db_path) as db:
        db.execute("UPDATE job SET cancel_requested = 1 WHERE id = ?", (job["id"],))

    second: Daemon = start_daemon()
    assert second.admin.wait_for(job["id"], "cancelled")["status"] == "cancelled"
    assert second.engine.runs() == []


def test_runs_left_by_jobs_the_table_does_not_know_are_released(start_daemon, engine) -> None:  # type: ignore[no-untyped-def]
    from tao_server.backends import LaunchSpec
    from tao_server.testing.fake_backend import FakeBackend

    stray = FakeBackend(engine).prepare(LaunchSpec(job_id="stray", image="tao-test/toolkit:1", command=["detectnet_v2", "hold", "x"]))
    stray.start()
    assert engine.running() == ["stray"]
    start_daemon()
    assert engine.runs() == []

"""The runner in process: the GPU line, restarts that adopt what the backend still runs, and failures,
among them ends that are not the task's own (a cancel on the cluster, a failed node)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from tao_server.testing.fake_engine import FakeEngine
from tests.inprocess.conftest import Daemon

QUEUE = frozenset({"queue"})  # the fake queues its runs, as Slurm does


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


# -- ends that are not the task's own --------------------------------------------------------------


def test_a_run_cancelled_outside_the_launcher_ends_cancelled_saying_so(daemon: Daemon, engine: FakeEngine) -> None:
    job = daemon.alice.submit("detectnet_v2", "sleep", "600")
    daemon.alice.wait_for_logs(job["id"], b"sleeping 600\n")
    engine.cancel_outside(job["id"])  # scancel by an admin, say
    ended = daemon.alice.wait_for(job["id"], "cancelled", "failed", "succeeded", "error")
    assert (ended["status"], ended["exit_code"], ended["error"]) == (
        "cancelled",
        143,
        "cancelled outside the launcher (by the fake engine)",
    )
    daemon.wait_until_released()


def test_a_job_waiting_in_its_backends_queue_reads_queued_with_the_reason_then_running(start_daemon, engine: FakeEngine) -> None:  # type: ignore[no-untyped-def]
    daemon: Daemon = start_daemon(places=QUEUE)
    engine.start_gate.clear()
    job = daemon.alice.submit("detectnet_v2", "hold", "queue")
    _until(lambda: daemon.alice.job(job["id"])["condition"] == "pending in the fake engine's queue", "the job shows why it waits")
    waiting = daemon.alice.job(job["id"])
    assert (waiting["status"], waiting["started_at"]) == ("queued", None)
    assert waiting["container_id"] is not None  # the backend's id, already: `tao stop --container_id` finds it
    engine.start_gate.set()
    running = daemon.alice.wait_for(job["id"], "running")
    assert running["condition"] is None and running["started_at"] is not None
    engine.release("queue")
    assert daemon.alice.wait_for(job["id"], "succeeded")["exit_code"] == 0


def test_a_stop_reaches_a_job_waiting_in_its_backends_queue(start_daemon, engine: FakeEngine) -> None:  # type: ignore[no-untyped-def]
    daemon: Daemon = start_daemon(places=QUEUE)
    engine.start_gate.clear()
    job = daemon.alice.submit("detectnet_v2", "exit", "0")
    _until(lambda: daemon.alice.job(job["id"])["condition"] is not None, "the job waits in the backend's queue")
    assert daemon.alice.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    ended = daemon.alice.wait_for(job["id"], "cancelled", "succeeded", "failed", "error")
    assert (ended["status"], ended["exit_code"]) == ("cancelled", None)
    daemon.wait_until_released()  # taken out of the backend's queue, not left there to run later
    engine.start_gate.set()
    assert daemon.alice.logs(job["id"]) == b""


def test_a_job_cancelled_outside_while_in_its_backends_queue_ends_cancelled_never_having_run(start_daemon, engine: FakeEngine) -> None:  # type: ignore[no-untyped-def]
    daemon: Daemon = start_daemon(places=QUEUE)
    engine.start_gate.clear()
    job = daemon.alice.submit("detectnet_v2", "exit", "0")
    _until(lambda: daemon.alice.job(job["id"])["condition"] is not None, "the job waits in the backend's queue")
    engine.cancel_outside(job["id"])
    ended = daemon.alice.wait_for(job["id"], "cancelled", "succeeded", "failed", "error")
    assert (ended["status"], ended["exit_code"], ended["started_at"]) == ("cancelled", None, None)
    assert "outside the launcher" in ended["error"]
    engine.start_gate.set()


def test_a_job_whose_node_fails_ends_error_and_its_log_keeps_what_it_prints_until_the_node_is_back(
    daemon: Daemon, engine: FakeEngine
) -> None:
    job = daemon.alice.submit("detectnet_v2", "ticks", "100000", "0.01")
    _until(lambda: b"tick 2\n" in daemon.alice.logs(job["id"]), "the job ticks")
    engine.fail_node(job["id"])
    ended = daemon.alice.wait_for(job["id"], "error", "succeeded", "failed", "cancelled")
    assert (ended["status"], ended["exit_code"], ended["error"]) == ("error", 125, "its node failed (the fake engine's)")
    at_end = len(daemon.alice.logs(job["id"]))
    _until(lambda: len(daemon.alice.logs(job["id"])) > at_end + 100, "what it prints after its end reaches the log")
    assert engine.runs() == [job["id"]]  # not released while it may still print
    engine.node_back()
    daemon.wait_until_released()  # once the task is gone, and its last words copied
    lines = daemon.alice.logs(job["id"]).decode().splitlines()
    assert lines[-1] == "got SIGTERM"
    assert lines[:-1] == [f"tick {n}" for n in range(1, len(lines))]
    assert daemon.alice.job(job["id"])["status"] == "error"  # the end stays the one recorded


def _until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.005)

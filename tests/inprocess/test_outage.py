"""The backend out of reach, in process (the fake engine's outage): no job ends because of it."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.inprocess.conftest import Daemon


def _until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.005)


def _ticks(log: bytes) -> list[str]:
    return log.decode().splitlines()


def test_a_running_job_waits_out_an_outage_and_loses_nothing(daemon: Daemon) -> None:
    job = daemon.admin.submit("detectnet_v2", "ticks", "100000", "0.01")
    _until(lambda: b"tick 3\n" in daemon.admin.logs(job["id"]), "the job ticks")
    with daemon.engine.outage():
        _until(lambda: daemon.admin.job(job["id"])["condition"] is not None, "the outage shows on the job")
        during = daemon.admin.job(job["id"])
        assert during["status"] == "running" and during["exit_code"] is None
        assert during["condition"].startswith("backend unreachable since ")
        health = daemon.client.get("/healthz").json()
        assert health["status"] == "degraded" and health["backend"].startswith("fake unreachable since ")
        assert "unreachable since" in daemon.admin.get("/v1/info").json()["engine"]["error"]
        later = daemon.admin.submit("detectnet_v2", "exit", "0")  # nothing new starts meanwhile
        assert daemon.admin.job(later["id"])["status"] == "queued"
    _until(lambda: daemon.client.get("/healthz").json() == {"status": "ok"}, "the daemon sees the backend again")
    assert daemon.admin.wait_for(later["id"], "succeeded")["exit_code"] == 0
    logged = len(daemon.admin.logs(job["id"]))
    _until(lambda: len(daemon.admin.logs(job["id"])) > logged + 20, "the job's output is copied again")
    assert daemon.admin.job(job["id"])["condition"] is None
    daemon.admin.post(f"/v1/jobs/{job['id']}/cancel")
    done = daemon.admin.wait_for(job["id"], "cancelled")
    assert done["exit_code"] == 143
    lines = _ticks(daemon.admin.logs(job["id"]))
    assert lines[-1] == "got SIGTERM"
    assert lines[:-1] == [f"tick {n}" for n in range(1, len(lines))]  # none lost, none twice


def test_a_cancel_asked_during_an_outage_is_carried_out_when_the_backend_answers(daemon: Daemon) -> None:
    job = daemon.admin.submit("detectnet_v2", "sleep", "600")
    daemon.admin.wait_for_logs(job["id"], b"sleeping 600\n")
    with daemon.engine.outage():
        answer = daemon.admin.post(f"/v1/jobs/{job['id']}/cancel")
        assert answer.status_code == 202 and answer.json()["cancel_requested"] is True
        _until(lambda: daemon.admin.job(job["id"])["condition"] is not None, "the outage shows on the job")
        assert daemon.admin.job(job["id"])["status"] == "running"  # the stop waits for the backend
    done = daemon.admin.wait_for(job["id"], "cancelled")
    assert done["exit_code"] == 143
    assert daemon.admin.logs(job["id"]) == b"sleeping 600\ngot SIGTERM\n"
    daemon.wait_until_released()


def test_a_run_that_vanished_during_an_outage_ends_its_job_saying_so(daemon: Daemon) -> None:
    job = daemon.admin.submit("detectnet_v2", "sleep", "600")
    daemon.admin.wait_for_logs(job["id"], b"sleeping 600\n")
    with daemon.engine.outage():
        _until(lambda: daemon.admin.job(job["id"])["condition"] is not None, "the outage shows on the job")
        daemon.engine.remove(job["id"])  # someone removed the container meanwhile
    done = daemon.admin.wait_for(job["id"], "error")
    assert done["exit_code"] == 125
    assert "vanished while the engine was out of reach" in done["error"]
    assert daemon.admin.logs(job["id"]) == b"sleeping 600\n"  # what it printed is kept


def test_a_job_keeps_its_gpu_through_an_outage(start_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon: Daemon = start_daemon(gpus="0")
    holder = daemon.admin.submit("detectnet_v2", "hold", "gpu", gpus="1")
    daemon.admin.wait_for_logs(holder["id"], b"holding gpu\n")
    waiting = daemon.admin.submit("detectnet_v2", "exit", "0", gpus="1")
    with daemon.engine.outage():
        _until(lambda: daemon.admin.job(holder["id"])["condition"] is not None, "the outage shows on the job")
        assert daemon.admin.job(holder["id"])["gpus"] == ["0"]
        assert daemon.admin.job(waiting["id"])["gpu_queue_position"] == 1  # not given the holder's GPU
    daemon.engine.release("gpu")
    assert daemon.admin.wait_for(holder["id"], "succeeded")["exit_code"] == 0
    assert daemon.admin.wait_for(waiting["id"], "succeeded")["gpus"] == ["0"]
    assert [spec.devices for spec in daemon.engine.launched] == [["0"], ["0"]]
    assert daemon.admin.logs(holder["id"]) == b"holding gpu\nreleased gpu\n"


def test_a_job_that_ended_during_the_outage_gets_its_true_exit_code(daemon: Daemon) -> None:
    job = daemon.admin.submit("detectnet_v2", "hold", "ends")
    daemon.admin.wait_for_logs(job["id"], b"holding ends\n")
    with daemon.engine.outage():
        _until(lambda: daemon.admin.job(job["id"])["condition"] is not None, "the outage shows on the job")
        daemon.engine.release("ends")  # it prints and ends while nobody can ask
        _until(lambda: daemon.engine.running() == [], "the run ends")
    done = daemon.admin.wait_for(job["id"], "succeeded")
    assert done["exit_code"] == 0
    assert daemon.admin.logs(job["id"]) == b"holding ends\nreleased ends\n"

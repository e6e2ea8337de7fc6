"""Engine outages against the real daemon and engine: a relay the test cuts (tao_server.testing.engine_proxy).

The daemon reaches the engine only through the relay; cutting it is what a daemon sees of an
engine restart or a socket gone, while the containers run on. No job may end because of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tao_server.testing.daemon import Daemon
from tao_server.testing.engine_proxy import EngineProxy
from tests.integration.conftest import consecutive_ticks, job_containers, job_id_of, job_log, running_job, until

pytestmark = pytest.mark.integration


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[EngineProxy]:
    relay = EngineProxy(tmp_path / "engine.sock")
    yield relay
    relay.close()


@pytest.fixture
def proxied(new_daemon, proxy: EngineProxy) -> Callable[..., Daemon]:  # type: ignore[no-untyped-def]
    def start(*args: str) -> Daemon:
        daemon: Daemon = new_daemon(*args, env={"TAO_DOCKER_HOST": proxy.address})
        return daemon.start()

    return start


def _health(daemon: Daemon) -> dict[str, Any]:
    with daemon.http() as client:
        health: dict[str, Any] = client.get("/healthz").json()
    return health


@pytest.mark.parametrize("seconds", [0.3, 5, 30])
def test_running_jobs_wait_out_an_outage_and_lose_nothing(proxied, proxy: EngineProxy, seconds: float) -> None:  # type: ignore[no-untyped-def]
    daemon = proxied()
    attached = daemon.popen_tao("detectnet_v2", "ticks", "100000", "0.01")
    job_id = running_job(daemon)
    until(lambda: b"tick 5\n" in job_log(daemon, job_id), "the job ticks")
    with proxy.outage():
        if seconds >= 5:  # long enough to look at
            until(lambda: daemon.job(job_id).get("condition") is not None, "the outage shows on the job")
            during = daemon.job(job_id)
            assert (during["status"], during["exit_code"]) == ("running", None)
            assert during["condition"].startswith("backend unreachable since ")
            assert _health(daemon)["status"] == "degraded"
            listed = daemon.tao("list").stdout.decode()
            assert f"{job_id}" in listed and "backend unreachable since" in listed
            later = job_id_of(daemon.tao("-d", "detectnet_v2", "exit", "0"))
            assert daemon.job(later)["status"] == "queued"  # nothing new starts meanwhile
            assert attached.poll() is None  # the attached client keeps waiting
        time.sleep(seconds)
    until(lambda: _health(daemon) == {"status": "ok"}, "the daemon sees the engine again")
    logged = len(job_log(daemon, job_id))
    until(lambda: len(job_log(daemon, job_id)) > logged + 50, "the output is copied again")
    assert daemon.tao("stop", job_id).returncode == 0
    out, err = attached.communicate(timeout=120)
    assert attached.returncode == 143, err  # cancelled: the client says so, as with Ctrl-C
    consecutive_ticks(out)
    assert job_log(daemon, job_id) == out  # the client printed exactly what the daemon kept
    final = daemon.job(job_id)
    assert (final["status"], final["exit_code"]) == ("cancelled", 143)
    if seconds >= 5:
        assert daemon.wait_for_status(later, ("succeeded",))["exit_code"] == 0


def test_a_stop_during_an_outage_is_carried_out_when_the_engine_answers(proxied, proxy: EngineProxy, docker_client) -> None:  # type: ignore[no-untyped-def]
    daemon = proxied()
    job_id = job_id_of(daemon.tao("-d", "detectnet_v2", "sleep", "600"))
    daemon.wait_for_output(job_id, b"sleeping 600\n")
    with proxy.outage():
        stop = daemon.popen_tao("stop", job_id)
        until(lambda: daemon.job(job_id)["cancel_requested"], "the stop is recorded")
        assert daemon.job(job_id)["status"] == "running"
        assert stop.poll() is None  # `tao stop` waits for the job's end
    out, err = stop.communicate(timeout=120)
    assert stop.returncode == 0, err
    assert out.decode().strip() == f"{job_id}: cancelled"
    assert daemon.job(job_id)["exit_code"] == 143
    assert job_log(daemon, job_id) == b"sleeping 600\ngot SIGTERM\n"
    assert job_containers(docker_client, job_id) == []


def test_a_container_removed_during_an_outage_ends_its_job_saying_so(proxied, proxy: EngineProxy, docker_client) -> None:  # type: ignore[no-untyped-def]
    daemon = proxied()
    job_id = job_id_of(daemon.tao("-d", "detectnet_v2", "sleep", "600"))
    daemon.wait_for_output(job_id, b"sleeping 600\n")
    with proxy.outage():
        until(lambda: daemon.job(job_id).get("condition") is not None, "the outage shows on the job")
        for container in job_containers(docker_client, job_id):  # the real engine, not through the relay
            docker_client.api.remove_container(container, force=True)
    final = daemon.wait_for_status(job_id, ("error",))
    assert final["exit_code"] == 125
    assert "vanished while the engine was out of reach" in final["error"]
    assert job_log(daemon, job_id) == b"sleeping 600\n"


def test_a_job_keeps_its_gpu_through_an_outage(proxied, proxy: EngineProxy, docker_client) -> None:  # type: ignore[no-untyped-def]
    daemon = proxied("--gpus", "0", "--gpu-mode", "env")
    holder = job_id_of(daemon.tao("-d", "--gpus", "1", "unet", "sleep", "600"))
    daemon.wait_for_output(holder, b"sleeping 600\n")
    waiting = job_id_of(daemon.tao("-d", "--gpus", "1", "unet", "run", "sh", "-c", "echo got $NVIDIA_VISIBLE_DEVICES"))
    with proxy.outage():
        until(lambda: daemon.job(holder).get("condition") is not None, "the outage shows on the job")
        assert daemon.job(holder)["gpus"] == ["0"]
        assert daemon.job(waiting)["status"] == "queued"  # the GPU is not handed to another job
    assert daemon.job(waiting)["gpu_queue_position"] == 1
    assert daemon.tao("stop", holder).returncode == 0
    assert daemon.wait_for_status(waiting, ("succeeded",))["gpus"] == ["0"]
    assert job_log(daemon, waiting) == b"got 0\n"

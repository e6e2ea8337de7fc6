"""Exclusive GPUs on a configured 4-GPU inventory (--gpu-mode env: no GPU is needed on this host)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tao_server.testing.daemon import LABEL_DAEMON, Daemon
from tests.integration.conftest import in_line, job_id_of

pytestmark = pytest.mark.integration


@pytest.fixture
def gpu_daemon(new_daemon) -> Daemon:  # type: ignore[no-untyped-def]
    return new_daemon("--gpus", "0,1,2,3", "--gpu-mode", "env", "--max-running-jobs", "64").start()


def _submit(daemon: Daemon, gpus: str, *args: str, **extra: Any) -> dict[str, Any]:
    with daemon.http() as client:
        response = client.post("/v1/jobs", json={"task": "unet", "subtask": "run", "args": list(args), "gpus": gpus, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def _visible_devices(docker_client: Any, container_id: str) -> list[str]:
    import docker.errors

    try:
        env = docker_client.api.inspect_container(container_id)["Config"]["Env"]
    except docker.errors.NotFound:  # ended and removed between the listing and now
        return []
    values = [line.split("=", 1)[1] for line in env if line.startswith("NVIDIA_VISIBLE_DEVICES=")]
    return values[0].split(",") if values else []


def test_fifty_concurrent_jobs_never_share_a_device(gpu_daemon: Daemon, docker_client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Each job holds a lock named after its device while it runs: a second holder of the same
    # device at the same moment cannot take it, and says so, however the jobs' timing falls.
    locks = tmp_path / "locks"
    locks.mkdir()
    config = {"Mounts": [{"source": str(locks), "destination": "/locks"}]}
    claim = "mkdir /locks/gpu$NVIDIA_VISIBLE_DEVICES || echo CLASH; sleep 0.3; rmdir /locks/gpu$NVIDIA_VISIBLE_DEVICES"
    with ThreadPoolExecutor(10) as pool:
        jobs = list(pool.map(lambda _: _submit(gpu_daemon, "1", "sh", "-c", claim, launch_config=config), range(50)))
    clashes, most_running, samples = [], 0, 0
    done = threading.Event()

    def watch() -> None:
        nonlocal most_running, samples
        daemon_id = gpu_daemon.daemon_id()
        while not done.is_set():
            running = docker_client.api.containers(filters={"label": f"{LABEL_DAEMON}={daemon_id}", "status": "running"})
            devices = [d for c in running for d in _visible_devices(docker_client, c["Id"])] if running else []
            if len(devices) != len(set(devices)):
                clashes.append(devices)
            most_running = max(most_running, len(running))
            samples += 1
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        finals = [gpu_daemon.wait_for_status(job["id"], ("succeeded", "failed", "error"), timeout=180) for job in jobs]
    finally:
        done.set()
        watcher.join()
    assert [job["status"] for job in finals] == ["succeeded"] * 50
    assert [gpu_daemon.tao("logs", job["id"]).stdout for job in finals] == [b""] * 50
    assert samples >= 1, "the watcher never looked"
    assert clashes == []
    assert 1 <= most_running <= 4
    assert all(len(job["gpus"]) == 1 and job["gpus"][0] in "0123" for job in finals)


def test_a_queued_job_starts_when_a_gpu_frees_and_shows_its_place(gpu_daemon: Daemon, docker_client) -> None:  # type: ignore[no-untyped-def]
    holder = _submit(gpu_daemon, "all", "sh", "-c", "sleep 600")
    gpu_daemon.wait_for_status(holder["id"], ("running",))
    waiting = _submit(gpu_daemon, "1", "sh", "-c", "echo got $NVIDIA_VISIBLE_DEVICES")
    queued = in_line(gpu_daemon, waiting["id"])
    assert queued["status"] == "queued" and queued["gpu_queue_position"] == 1
    listed = gpu_daemon.tao("list").stdout.decode()
    assert "queued (GPU line #1: needs 1 GPU, 0 free)" in listed
    info = gpu_daemon.tao("info").stdout.decode()
    assert f"0 (job {holder['id']})" in info and "[env mode]" in info
    gpu_daemon.tao("stop", holder["id"])
    final = gpu_daemon.wait_for_status(waiting["id"], ("succeeded",))
    assert gpu_daemon.tao("logs", waiting["id"]).stdout == b"got 0\n"
    assert final["gpus"] == ["0"]


def test_first_come_first_served_and_cancelling_frees_a_place(gpu_daemon: Daemon) -> None:
    holder = _submit(gpu_daemon, "3", "sh", "-c", "sleep 600")  # one device stays free
    gpu_daemon.wait_for_status(holder["id"], ("running",))
    large = _submit(gpu_daemon, "2", "sh", "-c", "sleep 600")
    small = _submit(gpu_daemon, "1", "sh", "-c", "echo small ran")
    in_line(gpu_daemon, large["id"])
    in_line(gpu_daemon, small["id"])
    time.sleep(0.5)  # a small job that could overtake would have by now
    assert gpu_daemon.job(large["id"])["gpu_queue_position"] == 1
    assert gpu_daemon.job(small["id"])["status"] == "queued"  # fits, but may not overtake the larger job
    assert gpu_daemon.job(small["id"])["gpu_queue_position"] == 2
    assert gpu_daemon.tao("stop", large["id"]).stdout.decode().strip() == f"{large['id']}: cancelled"
    assert gpu_daemon.wait_for_status(small["id"], ("succeeded",))["gpus"] == ["3"]
    gpu_daemon.tao("stop", holder["id"])


def test_exact_indices_and_jobs_without_gpus(gpu_daemon: Daemon, docker_client) -> None:  # type: ignore[no-untyped-def]
    picked = job_id_of(gpu_daemon.tao("-d", "--gpu-index", "1,3", "unet", "run", "sh", "-c", "sleep 30"))
    running = gpu_daemon.wait_for_status(picked, ("running",))
    assert running["gpus"] == ["1", "3"]
    assert _visible_devices(docker_client, running["container_id"]) == ["1", "3"]
    none = gpu_daemon.tao("--gpus", "none", "unet", "run", "sh", "-c", "echo [$NVIDIA_VISIBLE_DEVICES]")
    assert none.stdout == b"[void]\n"  # an image's NVIDIA_VISIBLE_DEVICES=all must not reach the box's GPUs
    job = gpu_daemon.job(job_id_of(gpu_daemon.tao("-d", "--gpus", "none", "unet", "run", "sleep", "600")))
    job = gpu_daemon.wait_for_status(job["id"], ("running",))
    assert not docker_client.api.inspect_container(job["container_id"])["HostConfig"].get("DeviceRequests")
    gpu_daemon.tao("stop", picked, job["id"])


def test_asking_more_gpus_than_the_box_has_fails_at_once(gpu_daemon: Daemon) -> None:
    result = gpu_daemon.tao("--gpus", "5", "unet", "run", "true")
    assert result.returncode == 125
    assert b"asks for 5 GPUs but the host has 4 (0, 1, 2, 3)" in result.stderr
    missing = gpu_daemon.tao("--gpu-index", "7", "unet", "run", "true")
    assert missing.returncode == 125
    assert b"GPU index 7 does not exist" in missing.stderr


def test_jobs_waiting_for_gpus_take_no_worker(new_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon = new_daemon("--gpus", "0", "--gpu-mode", "env", "--max-running-jobs", "2").start()
    holder = job_id_of(daemon.tao("-d", "--gpus", "1", "unet", "sleep", "600"))
    daemon.wait_for_status(holder, ("running",))
    waiting = [job_id_of(daemon.tao("-d", "--gpus", "1", "unet", "run", "true")) for _ in range(3)]
    # More jobs wait for the GPU than there are workers; a job without GPUs still runs meanwhile.
    cpu_only = daemon.tao("--gpus", "none", "unet", "run", "echo", "ran", timeout=120)
    assert (cpu_only.returncode, cpu_only.stdout) == (0, b"ran\n")
    assert daemon.job(holder)["status"] == "running"
    assert [in_line(daemon, job_id)["gpu_queue_position"] for job_id in waiting] == [1, 2, 3]
    daemon.tao("stop", holder)
    for job_id in waiting:
        assert daemon.wait_for_status(job_id, ("succeeded",))["gpus"] == ["0"]


def test_a_restart_gives_queued_jobs_only_the_gpus_no_resumed_job_holds(shared_daemons, unprivileged_user, tmp_path, docker_client) -> None:  # type: ignore[no-untyped-def]
    import signal

    from tests.integration.conftest import tao_as

    policy = tmp_path / "policy.toml"
    policy.write_text("[default]\nmax_gpus = 1\n")
    policy.chmod(0o644)
    daemon = shared_daemons("--gpus", "0,1", "--gpu-mode", "env", "--policy", str(policy))
    short = job_id_of(tao_as(daemon, unprivileged_user, "-d", "--gpu-index", "1", "unet", "sleep", "60"))
    daemon.wait_for_status(short, ("running",))
    capped = job_id_of(tao_as(daemon, unprivileged_user, "-d", "--gpus", "1", "unet", "sleep", "60"))  # waits for the user's cap
    admins = job_id_of(daemon.tao("-d", "--gpu-index", "0", "unet", "sleep", "60"))
    daemon.wait_for_status(admins, ("running",))
    assert daemon.job(capped)["status"] == "queued"

    daemon.stop(signal.SIGKILL)
    docker_client.containers.get(f"tao-{short}").remove(force=True)  # gone while no daemon ran: the cap frees
    daemon.start()
    # The queued job sorts before the resumed one, yet must not be given the resumed job's GPU 0.
    assert daemon.wait_for_status(capped, ("running",))["gpus"] == ["1"]
    assert daemon.job(admins)["gpus"] == ["0"] and daemon.job(admins)["status"] == "running"
    assert daemon.job(short)["status"] == "error"
    daemon.tao("stop", capped, admins)

"""The GPU line against the real engine, on a placeholder 4-GPU inventory in env mode (no GPU needed on this host).

Each container's NVIDIA_VISIBLE_DEVICES names the devices the daemon gave it. Downloads are held
by a relay in front of the local registry, jobs wait on gates, and time limits are enforced on
real containers, so what is checked never rests on how fast the machine is.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tao_server.testing.daemon import Daemon, executable
from tao_server.testing.registry import PASSWORD, USERNAME, HeldBlobs, remove_local
from tests.integration.conftest import REPOSITORY, Gates, in_line, job_id_of, tao_as, until

pytestmark = pytest.mark.integration

ENV_GPUS = ("--gpus", "0,1,2,3", "--gpu-mode", "env")


def _visible_devices(docker_client: Any, container_id: str) -> list[str]:
    env = docker_client.api.inspect_container(container_id)["Config"]["Env"]
    return next(line.split("=", 1)[1].split(",") for line in env if line.startswith("NVIDIA_VISIBLE_DEVICES="))


def _detached(daemon: Daemon, *args: str, env: dict[str, str] | None = None) -> str:
    result = daemon.tao("-d", *args, env=env)
    assert result.returncode == 0, result.stderr
    return job_id_of(result)


def _when(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _events(daemon: Daemon, job_id: str) -> list[dict[str, Any]]:
    with daemon.http() as client:
        events: list[dict[str, Any]] = client.get(f"/v1/jobs/{job_id}/events").json()["events"]
    return events


def _granted_at(daemon: Daemon, job_id: str) -> float:
    """When the job was given its devices (its `gpus` event)."""
    return float(next(event["time"] for event in _events(daemon, job_id) if event["type"] == "gpus"))


@pytest.fixture
def held_pull(registry, toolkit_image: str, tmp_path: Path) -> Iterator[tuple[HeldBlobs, Path]]:  # type: ignore[no-untyped-def]
    """A relay that holds the download of the registry image's own layer, and a manifest where detectnet_v2
    runs that image (absent from the engine) while unet runs the local toolkit image."""
    reg, reference, _, own_layer = registry
    relay = HeldBlobs(reg.host, own_layer)
    held_reference = reference.replace(reg.host, relay.host)
    local_repository, local_tag = toolkit_image.rsplit(":", 1)
    dockers = {
        REPOSITORY: {"1": {"docker_registry": relay.host, "tasks": ["detectnet_v2"]}},
        local_repository: {local_tag: {"docker_registry": "", "tasks": ["unet"]}},
    }
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"format_version": 2.0, "toolkit_version": "gpu-line-test", "dockers": dockers}))
    remove_local(held_reference)
    try:
        yield relay, manifest
    finally:
        relay.close()
        remove_local(held_reference)


def test_a_job_waiting_for_its_image_holds_no_device_while_others_run(new_daemon, held_pull, docker_client) -> None:  # type: ignore[no-untyped-def]
    relay, manifest = held_pull
    daemon = new_daemon(*ENV_GPUS, manifest=manifest).start()
    login = subprocess.run(
        [executable("tao"), "login", relay.host, "-u", USERNAME, "--password-stdin"],
        input=PASSWORD.encode() + b"\n", env=daemon.env(), capture_output=True, timeout=60,
    )  # fmt: skip
    assert login.returncode == 0, login.stderr
    downloading = _detached(daemon, "--gpus", "1", "detectnet_v2", "exit", "0")
    assert relay.held.wait(60), "the engine never asked for the layer"
    pulling = daemon.wait_for_status(downloading, ("pulling",))
    assert pulling["gpus"] == [] and pulling["gpu_wait"]["reason"] == "image"
    # A later job whose image is here takes all four devices: the downloading job holds none of them.
    everything = _detached(daemon, "--gpus", "4", "unet", "sleep", "600")
    running = daemon.wait_for_status(everything, ("running",))
    assert sorted(_visible_devices(docker_client, running["container_id"])) == ["0", "1", "2", "3"]
    assert daemon.job(downloading)["status"] == "pulling"
    listed = daemon.tao("list").stdout.decode()
    assert "pulling (GPU line #1: keeps its place while its image is pulled)" in listed
    relay.release()
    until(lambda: daemon.job(downloading)["status"] == "queued", "the image is here and the job waits for a device")
    assert daemon.job(downloading)["gpu_wait"]["message"] == "needs 1 GPU, 0 free"
    daemon.tao("stop", everything)
    done = daemon.wait_for_status(downloading, ("succeeded",), timeout=120)
    assert done["gpus"] == ["0"]
    kinds = [(event["type"], event["data"].get("status")) for event in _events(daemon, downloading)]
    assert kinds.index(("pull", "pulled")) < kinds.index(("gpus", None))  # the download was over before any device came


def test_a_second_users_job_overtakes_the_first_users_burst_by_fair_share(shared_daemons, unprivileged_user, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    daemon = shared_daemons("--gpus", "0", "--gpu-mode", "env")
    gates = Gates(tmp_path / "gates")
    env = daemon.env(LAUNCHER_MOUNTS=str(gates.mounts))
    first = _detached(daemon, "--gpus", "1", "unet", "run", "sh", "-c", gates.wait("first"), env=env)
    daemon.wait_for_status(first, ("running",))
    burst = [_detached(daemon, "--gpus", "1", "unet", "run", "sh", "-c", gates.wait(f"burst{n}"), env=env) for n in range(3)]
    theirs = job_id_of(tao_as(daemon, unprivileged_user, "-d", "--gpus", "1", "unet", "run", "echo", "overtook"))
    for job_id in [*burst, theirs]:
        in_line(daemon, job_id)
    # The daemon's user has used the GPU and the test user has not: the later job stands first.
    shown = json.loads(tao_as(daemon, unprivileged_user, "list", "--json").stdout)[0]
    assert (shown["gpu_queue_position"], shown["gpu_wait"]["message"]) == (1, "needs 1 GPU, 0 free")
    assert daemon.job(burst[0])["gpu_wait"]["behind"] == f"a job of {unprivileged_user[0]}"
    assert f"queued (GPU line #2: behind a job of {unprivileged_user[0]})" in daemon.tao("list").stdout.decode()
    gates.open("first")
    assert daemon.wait_for_status(theirs, ("succeeded",), timeout=120)["gpus"] == ["0"]
    assert tao_as(daemon, unprivileged_user, "logs", theirs).stdout == b"overtook\n"
    for n in range(3):
        gates.open(f"burst{n}")
    for job_id in burst:
        daemon.wait_for_status(job_id, ("succeeded",), timeout=120)
    assert _granted_at(daemon, theirs) < _granted_at(daemon, burst[0])  # the GPU went to the other user's job first


def test_a_backfilled_job_runs_while_the_head_waits_and_never_delays_it(new_daemon, gates: Gates) -> None:  # type: ignore[no-untyped-def]
    daemon = new_daemon("--gpus", "0,1", "--gpu-mode", "env", "--stop-timeout", "2").start()
    env = daemon.env(LAUNCHER_MOUNTS=str(gates.mounts))
    # Nothing opens these gates: the holder and the backfilled job run until their limits stop them.
    holder = _detached(daemon, "--gpus", "1", "--time", "0:20", "unet", "run", "sh", "-c", gates.wait("never"), env=env)
    daemon.wait_for_status(holder, ("running",))
    head = _detached(daemon, "--gpus", "2", "unet", "run", "echo", "head ran")
    reserved = in_line(daemon, head)["gpu_wait"]
    assert reserved["reason"] == "devices" and reserved["reserved_from"] is not None
    unlimited = _detached(daemon, "--gpus", "1", "unet", "run", "echo", "no limit")
    short = _detached(daemon, "--gpus", "1", "--time", "0:03", "unet", "run", "sh", "-c", gates.wait("never"), env=env)
    backfilled = daemon.wait_for_status(short, ("running",))
    in_line(daemon, unlimited)
    assert daemon.job(head)["status"] == "queued" and daemon.job(unlimited)["status"] == "queued"  # no limit: it never overtakes
    listed = daemon.tao("list").stdout.decode()
    # Its reservation is when it is expected to start: "queued (~14:05; GPU line #1: ...)".
    assert f"; GPU line #1: needs 2 GPUs, 0 free; reserved from {reserved['reserved_from'][:19]}" in listed
    assert "queued (~" in next(line for line in listed.splitlines() if line.startswith(head))
    assert f"queued (GPU line #2: behind job {head})" in listed
    assert backfilled["gpus"] == ["1"]
    assert daemon.wait_for_status(short, ("failed",), timeout=60)["error"] == "stopped at its time limit of 0:00:03"
    assert daemon.job(head)["status"] == "queued"  # the device the short job used waits for the head
    started = daemon.wait_for_status(head, ("succeeded",), timeout=120)
    assert _when(started["started_at"]) <= _when(reserved["reserved_from"])  # the head started no later than promised
    assert daemon.wait_for_status(holder, ("failed",))["error"] == "stopped at its time limit of 0:00:20"
    daemon.wait_for_status(unlimited, ("succeeded",), timeout=120)


def test_an_overrunning_job_is_stopped_at_its_limit(new_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon = new_daemon(*ENV_GPUS, "--stop-timeout", "1").start()
    started = time.monotonic()
    result = daemon.tao("--gpus", "1", "--time", "0:02", "unet", "sleep", "600")
    took = time.monotonic() - started
    assert result.returncode == 143  # the task answered the SIGTERM
    assert result.stdout == b"sleeping 600\ngot SIGTERM\n"
    assert b"tao: error: stopped at its time limit of 0:00:02" in result.stderr
    assert 2.0 <= took < 60  # never before its limit
    job = json.loads(daemon.tao("list", "--all", "--json").stdout)[-1]
    assert (job["status"], job["exit_code"]) == ("failed", 143)
    # A task that ignores SIGTERM is killed after the stop timeout, as a cancelled one would be.
    stubborn = daemon.tao("--gpus", "none", "--time", "0:01", "unet", "stubborn", "600")
    assert stubborn.returncode == 137 and b"stopped at its time limit of 0:00:01" in stubborn.stderr

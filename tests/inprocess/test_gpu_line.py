"""The GPU line in process: images pulled while jobs wait, fair share between users, time limits kept by the daemon.

The fake engine's pulls wait for `engine.pull_gate`, and `<task> hold NAME` for `engine.release(NAME)`,
so each test decides when a pull or a job ends; nothing depends on how fast the machine is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tao_server.access.caller import user_name_of
from tests.inprocess.conftest import IMAGE, Caller, Daemon


@pytest.fixture
def image_missing(engine) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """The job image is not on the fake engine, and pulls of it wait until the test opens the gate."""
    engine.images.discard(IMAGE)
    engine.pull_gate.clear()
    yield
    engine.pull_gate.set()


def _events(caller: Caller, job_id: str) -> list[dict[str, Any]]:
    """The job's events about its GPUs, pulls and time limit (its `image` event comes when it comes, beside the run)."""
    events: list[dict[str, Any]] = caller.get(f"/v1/jobs/{job_id}/events").json()["events"]
    return [event for event in events if event["type"] != "image"]


def _until(condition: Callable[[], bool], what: str) -> None:
    import time

    deadline = time.monotonic() + 30  # a safety net: the fake makes every step prompt
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.005)


def _in_line(caller: Caller, job_id: str) -> dict[str, Any]:
    """The job once its image is found and it waits for devices (the runner looks just after it joins the line)."""
    shown: dict[str, Any] = {}

    def looked() -> bool:
        shown.update(caller.job(job_id))
        return shown["status"] != "queued" or (shown.get("gpu_wait") or {}).get("reason") != "image"

    _until(looked, f"job {job_id}'s image is found")
    return shown


def _gpus_held(daemon: Daemon) -> list[str]:
    return [gpu["index"] for gpu in daemon.admin.get("/v1/info").json()["gpus"] if gpu.get("held")]


# -- images pulled while a job waits ------------------------------------------------------------------


def test_a_job_pulls_its_image_in_line_and_gets_devices_only_once_it_is_here(start_daemon, engine, image_missing) -> None:  # type: ignore[no-untyped-def]
    daemon = start_daemon(gpus="0,1")
    job = daemon.alice.submit("detectnet_v2", "exit", "0", gpus="1")
    pulling = daemon.alice.wait_for(job["id"], "pulling")
    assert pulling["gpus"] == [] and pulling["gpu_wait"]["reason"] == "image"
    assert "keeps its place while its image is pulled" in pulling["gpu_wait"]["message"]
    assert _gpus_held(daemon) == []  # nothing held while the image downloads
    engine.pull_gate.set()
    done = daemon.alice.wait_for(job["id"], "succeeded")
    kinds = [(event["type"], event["data"].get("status")) for event in _events(daemon.alice, job["id"])]
    pulled, granted = kinds.index(("pull", "pulled")), kinds.index(("gpus", None))
    assert pulled < granted  # the pull was over before the devices came
    assert done["gpus"] == ["0"]


def test_a_pull_that_fails_ends_the_job_without_it_ever_holding_a_device(start_daemon, engine, image_missing) -> None:  # type: ignore[no-untyped-def]
    engine.missing_images.add(IMAGE)
    daemon = start_daemon(gpus="0")
    job = daemon.alice.submit("detectnet_v2", "exit", "0", gpus="1")
    failed = daemon.alice.wait_for(job["id"], "error")
    assert "was not found in registry" in failed["error"] and failed["exit_code"] == 125
    assert failed["gpus"] == [] and all(event["type"] != "gpus" for event in _events(daemon.alice, job["id"]))
    next_one = daemon.bob.submit("detectnet_v2", "argv", gpus="1", pull="never")  # the line goes on
    assert "pull policy is never" in daemon.bob.wait_for(next_one["id"], "error")["error"]


def test_a_job_cancelled_while_its_image_downloads_leaves_the_line(start_daemon, engine, image_missing) -> None:  # type: ignore[no-untyped-def]
    daemon = start_daemon(gpus="0")
    job = daemon.alice.submit("detectnet_v2", "exit", "0", gpus="1")
    daemon.alice.wait_for(job["id"], "pulling")
    assert daemon.alice.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    assert daemon.alice.wait_for(job["id"], "cancelled")["gpus"] == []
    engine.pull_gate.set()
    after = daemon.bob.submit("detectnet_v2", "exit", "0", gpus="1")
    assert daemon.bob.wait_for(after["id"], "succeeded")["gpus"] == ["0"]


def test_an_image_gone_by_the_time_the_devices_come_sends_the_job_back_to_its_place(start_daemon, engine, image_missing) -> None:  # type: ignore[no-untyped-def]
    daemon = start_daemon(gpus="0")
    engine.images.add(IMAGE)
    holder = daemon.admin.submit("detectnet_v2", "hold", "gpu", gpus="1")
    daemon.admin.wait_for(holder["id"], "running")
    job = daemon.alice.submit("detectnet_v2", "exit", "0", gpus="1")
    _until(lambda: daemon.alice.job(job["id"])["gpu_wait"]["reason"] == "devices", "the job waits for the device, its image here")
    engine.images.discard(IMAGE)  # `docker rmi` behind the daemon's back
    engine.release("gpu")
    pulling = daemon.alice.wait_for(job["id"], "pulling")
    assert pulling["gpus"] == [] and _gpus_held(daemon) == []  # the device went back while the image downloads again
    engine.pull_gate.set()
    assert daemon.alice.wait_for(job["id"], "succeeded")["exit_code"] == 0
    kinds = [event["type"] for event in _events(daemon.alice, job["id"])]
    assert kinds[0] == "gpus" and kinds[-1] == "gpus" and "pull" in kinds[1:-1]


def test_a_fifo_line_gives_devices_first_and_pulls_after_as_before(start_daemon, engine, image_missing) -> None:  # type: ignore[no-untyped-def]
    daemon = start_daemon(gpus="0", gpu_line="fifo")
    job = daemon.alice.submit("detectnet_v2", "exit", "0", gpus="1")
    daemon.alice.wait_for(job["id"], "pulling")
    assert _gpus_held(daemon) == ["0"]
    engine.pull_gate.set()
    daemon.alice.wait_for(job["id"], "succeeded")
    assert _events(daemon.alice, job["id"])[0]["type"] == "gpus"


# -- fair share --------------------------------------------------------------------------------------


def test_a_second_users_job_goes_before_the_first_users_backlog(start_daemon, engine) -> None:  # type: ignore[no-untyped-def]
    daemon = start_daemon(gpus="0")
    first = daemon.alice.submit("detectnet_v2", "hold", "a0", gpus="1")
    daemon.alice.wait_for(first["id"], "running")
    backlog = [daemon.alice.submit("detectnet_v2", "hold", f"a{n}", gpus="1") for n in range(1, 4)]
    bobs = daemon.bob.submit("detectnet_v2", "hold", "b", gpus="1")
    for job in backlog:
        _in_line(daemon.alice, job["id"])
    shown = _in_line(daemon.bob, bobs["id"])
    assert shown["gpu_queue_position"] == 1 and shown["gpu_wait"]["message"] == "needs 1 GPU, 0 free"
    second = daemon.alice.job(backlog[0]["id"])
    bob = user_name_of(1002) or "uid 1002"  # a token user is named as the host names their uid
    assert second["gpu_queue_position"] == 2 and second["gpu_wait"]["behind"] == f"a job of {bob}"
    assert daemon.alice.job(backlog[1]["id"])["gpu_wait"]["behind"] == f"job {backlog[0]['id']}"  # her own, by id
    engine.release("a0")
    daemon.bob.wait_for(bobs["id"], "running")
    assert daemon.alice.job(backlog[0]["id"])["status"] == "queued"
    for name in ("b", "a1", "a2", "a3"):
        engine.release(name)
    for job in backlog:
        daemon.alice.wait_for(job["id"], "succeeded")


def test_fair_share_remembers_usage_across_a_restart(start_daemon, engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    daemon = start_daemon(gpus="0")
    used = daemon.alice.submit("detectnet_v2", "sleep", "0.3", gpus="1")
    daemon.alice.wait_for(used["id"], "succeeded")
    daemon.stop()
    again = start_daemon(data_dir=tmp_path / "data", gpus="0")
    holder = again.admin.submit("detectnet_v2", "hold", "gpu", gpus="1")
    again.admin.wait_for(holder["id"], "running")
    alices = again.alice.submit("detectnet_v2", "exit", "0", gpus="1")
    bobs = again.bob.submit("detectnet_v2", "exit", "0", gpus="1")
    _in_line(again.alice, alices["id"])
    _in_line(again.bob, bobs["id"])
    # alice came first, but her GPU-seconds from before the restart put bob ahead of her.
    assert again.bob.job(bobs["id"])["gpu_queue_position"] == 1
    assert again.alice.job(alices["id"])["gpu_queue_position"] == 2
    engine.release("gpu")
    again.alice.wait_for(alices["id"], "succeeded")


# -- time limits -------------------------------------------------------------------------------------


def test_a_job_past_its_time_limit_is_stopped_and_says_so(start_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon = start_daemon(gpus="0")
    job = daemon.alice.submit("detectnet_v2", "sleep", "600", gpus="1", time="0:01")
    ended = daemon.alice.wait_for(job["id"], "failed")
    assert (ended["exit_code"], ended["error"]) == (143, "stopped at its time limit of 0:00:01")  # the task answered SIGTERM
    assert daemon.alice.logs(job["id"]) == b"sleeping 600\ngot SIGTERM\n"
    assert [event["type"] for event in _events(daemon.alice, job["id"])] == ["gpus", "time_limit"]
    without_gpus = daemon.alice.submit("detectnet_v2", "sleep", "600", gpus="none", time="0:01")
    assert daemon.alice.wait_for(without_gpus["id"], "failed")["error"] == "stopped at its time limit of 0:00:01"


def test_a_job_within_its_limit_and_a_cancel_before_it_end_as_usual(start_daemon, engine) -> None:  # type: ignore[no-untyped-def]
    daemon = start_daemon(gpus="0")
    quick = daemon.alice.submit("detectnet_v2", "exit", "0", gpus="1", time="10")
    assert daemon.alice.wait_for(quick["id"], "succeeded")["error"] is None
    held = daemon.alice.submit("detectnet_v2", "hold", "x", gpus="1", time="10")
    daemon.alice.wait_for(held["id"], "running")
    daemon.alice.post(f"/v1/jobs/{held['id']}/cancel")
    assert daemon.alice.wait_for(held["id"], "cancelled")["error"] is None


def test_a_resumed_job_keeps_its_time_limit(start_daemon, tmp_path) -> None:  # type: ignore[no-untyped-def]
    daemon = start_daemon(gpus="0")
    job = daemon.alice.submit("detectnet_v2", "sleep", "600", gpus="1", time="0:02")
    daemon.alice.wait_for(job["id"], "running")
    daemon.stop()
    again = start_daemon(data_dir=tmp_path / "data", gpus="0")
    assert again.alice.wait_for(job["id"], "failed")["error"] == "stopped at its time limit of 0:00:02"


# -- backfill ----------------------------------------------------------------------------------------


def test_a_short_job_backfills_while_the_head_waits_and_a_job_without_a_limit_does_not(start_daemon, engine) -> None:  # type: ignore[no-untyped-def]
    daemon = start_daemon(gpus="0,1")
    running = daemon.admin.submit("detectnet_v2", "hold", "long", gpus="1", time="10:00")
    daemon.admin.wait_for(running["id"], "running")
    head = daemon.alice.submit("detectnet_v2", "exit", "0", gpus="2")
    waits = _in_line(daemon.alice, head["id"])["gpu_wait"]
    assert waits["reason"] == "devices" and waits["message"].startswith("needs 2 GPUs, 1 free; reserved from ")
    unlimited = daemon.bob.submit("detectnet_v2", "exit", "0", gpus="1")
    short = daemon.bob.submit("detectnet_v2", "hold", "short", gpus="1", time="1:00")
    daemon.bob.wait_for(short["id"], "running")  # it ends long before the head's devices are free
    _in_line(daemon.bob, unlimited["id"])
    assert daemon.bob.job(unlimited["id"])["status"] == "queued"  # without a limit it never overtakes
    assert daemon.alice.job(head["id"])["gpu_wait"]["reserved_from"] == waits["reserved_from"]
    engine.release("short")
    engine.release("long")
    daemon.alice.wait_for(head["id"], "succeeded")
    daemon.bob.wait_for(unlimited["id"], "succeeded")

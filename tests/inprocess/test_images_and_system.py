"""/v1/images, /v1/credentials, /v1/tasks, /v1/info and /v1/daemon in process."""

from __future__ import annotations

import json
import os

from tests.inprocess.conftest import IMAGE, TASKS, Daemon


def test_images_lists_the_manifests_images_and_whether_they_are_present(daemon: Daemon) -> None:
    [image] = daemon.alice.get("/v1/images").json()
    assert (image["reference"], image["registry"], image["present"]) == (IMAGE, "docker.io", True)
    assert image["tasks"] == sorted(TASKS) and image["id"].startswith("sha256:")
    daemon.engine.images.clear()
    [absent] = daemon.alice.get("/v1/images").json()
    assert (absent["present"], absent["size"], absent["id"]) == (False, None, None)


def test_a_pull_ahead_of_time_streams_progress_then_done(daemon: Daemon) -> None:
    daemon.engine.images.clear()
    answer = daemon.alice.post("/v1/images/pull", json={"tasks": ["detectnet_v2", "yolo_v4"]})
    assert answer.status_code == 200
    lines = [json.loads(line) for line in answer.text.splitlines()]
    assert lines[-1] == {"type": "done", "image": IMAGE, "error": None}  # one image for both tasks: one pull
    assert any(line["type"] == "progress" and line.get("total") == 2 for line in lines)
    assert daemon.engine.pulled == [(IMAGE, None)]


def test_pull_errors_and_refusals(daemon: Daemon) -> None:
    daemon.engine.images.clear()
    daemon.engine.missing_images.add(IMAGE)
    failed = [json.loads(line) for line in daemon.alice.post("/v1/images/pull", json={"tasks": ["unet"]}).text.splitlines()]
    assert failed[-1]["type"] == "done" and "was not found in registry" in failed[-1]["error"]
    refused = daemon.alice.post("/v1/images/pull", json={"images": ["evil/image:1"]})
    assert (refused.status_code, refused.json()["error"]["field"]) == (403, "images[0]")
    nothing = daemon.alice.post("/v1/images/pull", json={})
    assert (nothing.status_code, nothing.json()["error"]["field"]) == (422, "tasks")
    unknown = daemon.alice.post("/v1/images/pull", json={"tasks": ["no_such_task"]})
    assert unknown.json()["error"]["code"] == "unknown_task"


def test_logins_are_checked_kept_per_user_and_never_shown(daemon: Daemon) -> None:
    daemon.engine.logins["registry.example:5000"] = ("alice", "right")
    refused = daemon.alice.post("/v1/credentials", json={"registry": "registry.example:5000", "username": "alice", "password": "wrong"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "login_refused")
    stored = daemon.alice.post("/v1/credentials", json={"registry": "registry.example:5000", "username": "alice", "password": "right"})
    assert stored.status_code == 201
    assert stored.json() == {"registry": "registry.example:5000", "username": "alice", "owner_uid": 1001}
    assert daemon.alice.get("/v1/credentials").json() == [stored.json()]
    assert daemon.bob.get("/v1/credentials").json() == []
    assert daemon.admin.get("/v1/credentials").json() == []  # the daemon's shared logins, of which there are none
    bad = daemon.alice.post("/v1/credentials", json={"registry": "a/b", "username": "u", "password": "p"})
    assert (bad.status_code, bad.json()["error"]["field"]) == (422, "registry")
    assert daemon.bob.delete("/v1/credentials/registry.example:5000").status_code == 422
    forgotten = daemon.alice.delete("/v1/credentials/registry.example:5000")
    assert forgotten.json() == stored.json()
    assert daemon.alice.get("/v1/credentials").json() == []


def test_a_users_job_pulls_with_their_own_login(daemon: Daemon) -> None:
    daemon.engine.images.clear()
    daemon.engine.logins["docker.io"] = ("alice", "right")
    daemon.alice.post("/v1/credentials", json={"registry": "docker.io", "username": "alice", "password": "right"})
    bobs = daemon.bob.submit("detectnet_v2", "exit", "0")
    assert "refused access" in daemon.bob.wait_for(bobs["id"], "error")["error"]
    alices = daemon.alice.submit("detectnet_v2", "exit", "0")
    daemon.alice.wait_for(alices["id"], "succeeded")
    assert daemon.engine.pulled == [(IMAGE, ("alice", "right"))]


def test_tasks_and_info(daemon: Daemon) -> None:
    tasks = daemon.alice.get("/v1/tasks").json()
    assert tasks["toolkit_version"] == "in-process"
    assert sorted(task["name"] for task in tasks["tasks"]) == sorted(TASKS)
    assert next(task for task in tasks["tasks"] if task["name"] == "detectnet_v2")["subtasks"] == ["argv", "exit", "train"]
    job = daemon.alice.submit("detectnet_v2", "exit", "1")
    daemon.alice.wait_for(job["id"], "failed")
    info = daemon.alice.get("/v1/info", params={"verbose": "true"}).json()
    assert info["daemon"]["jobs"] == {"failed": 1}
    assert info["engine"]["backend"] == "fake"
    assert info["gpus"] == [] and info["gpu_mode"] == "env"
    assert info["images"][0]["reference"] == IMAGE and info["images"][0]["local"]["id"].startswith("sha256:")
    assert daemon.alice.get("/v1/info").json()["images"][0].get("local") is None


def test_info_shows_a_user_their_own_jobs_and_keeps_the_daemons_process_to_admins(daemon: Daemon) -> None:
    for caller, code in ((daemon.alice, "1"), (daemon.alice, "0"), (daemon.bob, "2")):
        caller.wait_for(caller.submit("detectnet_v2", "exit", code)["id"], "succeeded", "failed")
    alices = daemon.alice.get("/v1/info").json()["daemon"]
    assert alices["jobs"] == {"failed": 1, "succeeded": 1}
    assert "pid" not in alices and "data_dir" not in alices
    assert daemon.bob.get("/v1/info").json()["daemon"]["jobs"] == {"failed": 1}
    admins = daemon.admin.get("/v1/info").json()["daemon"]
    assert admins["jobs"] == {"failed": 2, "succeeded": 1}
    assert admins["pid"] == os.getpid() and admins["data_dir"] == str(daemon.settings.data_dir)


def test_the_daemon_reports_how_it_was_started_to_admins_only(start_daemon, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TAO_GPU_LINE", "fifo")
    monkeypatch.setenv("NGC_API_KEY", "secret-key")
    daemon = start_daemon(started_by="tao")
    admins = daemon.admin.get("/v1/daemon").json()
    assert (admins["pid"], admins["started_by"], admins["cwd"]) == (os.getpid(), "tao", os.getcwd())
    assert admins["log"] == str(daemon.settings.data_dir / "daemon.log")
    assert admins["environment"]["TAO_GPU_LINE"] == "fifo" and admins["environment"]["TAO_MANIFEST"] is None
    assert "TAO_SOCKET" not in admins["environment"]  # `tao` gives it as a flag
    assert "secret-key" not in json.dumps(admins)
    assert admins["manifest"].endswith("manifest.json") and admins["dashboard"] is None  # in process: no listener
    alices = daemon.alice.get("/v1/daemon").json()
    assert set(alices) == {"version", "addresses", "dashboard", "started_at", "manifest"}

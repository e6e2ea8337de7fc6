"""Who sees what, in process: tokens, owners, admins, the policy's refusals and the GPU view."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.inprocess.conftest import Daemon


def test_every_route_but_healthz_needs_a_token(daemon: Daemon) -> None:
    assert daemon.client.get("/healthz").json() == {"status": "ok"}
    for path in ("/v1/jobs", "/v1/info", "/v1/tasks", "/v1/images", "/v1/credentials", "/v1/jobs/x/logs"):
        missing = daemon.client.get(path)
        assert missing.status_code == 401, path
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["error"]["code"] == "unauthorized"
        wrong = daemon.client.get(path, headers={"Authorization": "Bearer tao_nope_nope"})
        assert wrong.status_code == 401
        assert "not valid" in wrong.json()["error"]["message"]


def test_a_revoked_token_is_refused_from_the_next_call(daemon: Daemon) -> None:
    tokens = daemon.client.app.state.services.tokens  # type: ignore[attr-defined]
    token, text = tokens.create("carol", 1003, 1003)
    headers = {"Authorization": f"Bearer {text}"}
    assert daemon.client.get("/v1/jobs", headers=headers).status_code == 200
    assert tokens.revoke(token.id)
    assert daemon.client.get("/v1/jobs", headers=headers).status_code == 401


def test_a_users_job_is_theirs_alone(daemon: Daemon) -> None:
    job = daemon.alice.submit("detectnet_v2", "hold", "alice")
    assert (job["owner_uid"], job["owner_gid"]) == (1001, 1001)
    daemon.alice.wait_for(job["id"], "running")
    not_found = {"code": "job_not_found", "message": f"no job {job['id']!r}; `tao list --all` shows the known jobs", "field": "id"}
    for method, path in [
        ("GET", f"/v1/jobs/{job['id']}"),
        ("GET", f"/v1/jobs/{job['id']}/logs"),
        ("GET", f"/v1/jobs/{job['id']}/events"),
        ("POST", f"/v1/jobs/{job['id']}/cancel"),
    ]:
        answer = daemon.client.request(method, path, headers=daemon.bob.headers)
        assert (answer.status_code, answer.json()["error"]) == (404, not_found), path
    assert daemon.bob.get("/v1/jobs").json()["jobs"] == []
    assert [j["id"] for j in daemon.alice.get("/v1/jobs").json()["jobs"]] == [job["id"]]
    assert [j["id"] for j in daemon.admin.get("/v1/jobs").json()["jobs"]] == [job["id"]]
    assert daemon.alice.job(job["id"])["cancel_requested"] is False  # bob's cancel did nothing
    daemon.admin.post(f"/v1/jobs/{job['id']}/cancel")  # an admin may stop anyone's
    assert daemon.alice.wait_for(job["id"], "cancelled")["status"] == "cancelled"


def test_a_websocket_follower_of_another_users_job_gets_the_not_found_answer(daemon: Daemon) -> None:
    job = daemon.alice.submit("detectnet_v2", "exit", "0")
    daemon.alice.wait_for(job["id"], "succeeded")
    with daemon.client.websocket_connect(f"/v1/jobs/{job['id']}/logs", headers=daemon.bob.headers) as ws:
        message = ws.receive_json()
        assert message["type"] == "error" and message["code"] == "job_not_found"


def test_a_users_job_runs_as_them_confined(daemon: Daemon) -> None:
    job = daemon.alice.submit("detectnet_v2", "id")
    options = job["docker_options"]
    assert options["user"] == "1001:1001"
    assert options["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in options["security_opt"]
    daemon.alice.wait_for(job["id"], "succeeded")
    assert daemon.alice.logs(job["id"]) == b"uid=1001 gid=1001\n"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"privileged": True}, "DockerOptions.privileged"),
        ({"user": "0:0"}, "DockerOptions.user"),
        ({"network": "host"}, "DockerOptions.network"),
        ({"cap_add": ["SYS_ADMIN"]}, "DockerOptions.cap_add"),
        ({"ports": {"80": 80}}, "DockerOptions.ports"),
    ],
)
def test_what_the_policy_does_not_grant_is_a_403_naming_the_field(daemon: Daemon, options: dict, field: str) -> None:  # type: ignore[type-arg]
    answer = daemon.alice.post("/v1/jobs", json={"task": "detectnet_v2", "launch_config": {"DockerOptions": options}})
    assert answer.status_code == 403, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("refused_by_policy", field)
    assert "uid 1001" in error["message"]
    assert (
        daemon.admin.post(
            "/v1/jobs", json={"task": "detectnet_v2", "subtask": "exit", "args": ["0"], "launch_config": {"DockerOptions": options}}
        ).status_code
        == 201
    )


def test_the_policys_gpu_cap_holds_per_user(start_daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.toml"
    policy.write_text("[default]\nmax_gpus = 1\n")
    daemon = start_daemon(gpus="0,1", policy=policy)
    refused = daemon.alice.post("/v1/jobs", json={"task": "detectnet_v2", "gpus": "2"})
    assert refused.status_code == 403
    assert (
        refused.json()["error"]["message"] == f"gpus: this job asks for 2 GPUs, but {policy} lets uid 1001 (alice) hold at most 1 at once"
    )
    first = daemon.alice.submit("detectnet_v2", "hold", "a1", gpus="1")
    daemon.alice.wait_for(first["id"], "running")
    second = daemon.alice.submit("detectnet_v2", "exit", "0", gpus="1")  # waits: alice is at her cap
    bobs = daemon.bob.submit("detectnet_v2", "hold", "b1", gpus="1")  # passes her: the other GPU is free
    daemon.bob.wait_for(bobs["id"], "running")
    assert daemon.alice.job(second["id"])["status"] == "queued"
    daemon.engine.release("a1")
    assert daemon.alice.wait_for(second["id"], "succeeded")["gpus"] == daemon.alice.job(first["id"])["gpus"]
    daemon.engine.release("b1")


def test_the_gpu_view_names_only_jobs_the_caller_may_see(start_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon = start_daemon(gpus="0,1")
    job = daemon.alice.submit("detectnet_v2", "hold", "gpu", gpus="1")
    daemon.alice.wait_for(job["id"], "running")
    [held] = daemon.alice.job(job["id"])["gpus"]
    view = {gpu["index"]: gpu for gpu in daemon.alice.get("/v1/info").json()["gpus"]}
    assert view[held] == {"index": held, "held": True, "job": job["id"]}
    bobs = {gpu["index"]: gpu for gpu in daemon.bob.get("/v1/info").json()["gpus"]}
    assert bobs[held] == {"index": held, "held": True, "job": None}  # busy, but not whose
    admins = {gpu["index"]: gpu for gpu in daemon.admin.get("/v1/info").json()["gpus"]}
    assert admins[held]["job"] == job["id"]
    daemon.engine.release("gpu")


def test_ids_users_choose_live_in_their_own_namespace_and_reveal_nothing(daemon: Daemon) -> None:
    alices = daemon.alice.submit("detectnet_v2", "exit", "0", id="run1")
    assert alices["id"] == "alice.run1"
    bobs = daemon.bob.submit("detectnet_v2", "exit", "1", id="run1")  # no conflict: nothing learned of alice's
    assert bobs["id"] == "bob.run1"
    assert daemon.alice.job("run1")["id"] == "alice.run1"  # a user may leave the namespace out
    assert daemon.bob.job("run1")["id"] == "bob.run1"
    again = daemon.alice.submit("detectnet_v2", "exit", "0", id="alice.run1", expect=200)  # the same job: harmless
    assert again["id"] == "alice.run1"
    assert daemon.alice.post("/v1/jobs", json={"task": "detectnet_v2", "subtask": "exit", "args": ["2"], "id": "run1"}).status_code == 409
    admins = daemon.admin.submit("detectnet_v2", "exit", "0", id="run1")
    assert admins["id"] == "run1"  # admins name jobs as they like
    assert daemon.admin.job("alice.run1")["owner_uid"] == 1001
    assert daemon.bob.get("/v1/jobs/alice.run1").status_code == 404
    long = daemon.alice.post("/v1/jobs", json={"task": "detectnet_v2", "id": "x" * 60})
    assert (long.status_code, long.json()["error"]["field"]) == (422, "id")
    assert daemon.alice.get("/v1/jobs/" + "x" * 60).status_code == 404  # looking up is never refused for length


def test_a_job_named_without_its_namespace_is_read_followed_and_stopped_as_itself(daemon: Daemon) -> None:
    chosen = daemon.alice.submit("detectnet_v2", "hold", "short-name", id="short")
    assert chosen["id"] == "alice.short"
    daemon.alice.wait_for("short", "running")
    daemon.alice.wait_for_logs("short", b"holding short-name\n")
    with daemon.client.stream("GET", "/v1/jobs/short/logs", params={"follow": "true"}, headers=daemon.alice.headers) as followed:
        assert followed.status_code == 200
        stopped = daemon.alice.post("/v1/jobs/short/cancel")
        assert stopped.status_code == 202, stopped.text  # asked: the task stops on its own time
        assert stopped.json()["id"] == "alice.short"
        assert b"".join(followed.iter_bytes()).startswith(b"holding short-name\n")
    assert daemon.alice.wait_for("short", "cancelled")["id"] == "alice.short"
    assert daemon.alice.get("/v1/jobs/short/events").status_code == 200

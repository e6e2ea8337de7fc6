"""The dashboard in process: its pages and fragments, what each caller sees, its sessions and its defences."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.dialects import sqlite
from starlette.websockets import WebSocketDisconnect

from tao_server.access.caller import Caller as AccessCaller
from tao_server.jobs.store import page_query
from tao_server.models import JobStatus
from tao_server.ui.guard import CONTENT_SECURITY_POLICY
from tests.inprocess.conftest import Daemon

PAGES = ["/ui/", "/ui/jobs/some-job", "/ui/gpus", "/ui/images", "/ui/login"]
ALICE = AccessCaller(uid=1001, gid=1001, admin=False)


def loopback(daemon: Daemon, port: int = 40000) -> TestClient:
    """A client of the same app that connects from 127.0.0.1, as a browser on this machine does: on port
    40000 it is alice's (uid 1001), on 40002 bob's (conftest.LOOPBACK_OWNERS), on another nobody's the daemon can name."""
    return TestClient(daemon.client.app, client=("127.0.0.1", port))


def open_session(daemon: Daemon, caller: AccessCaller = ALICE) -> TestClient:
    browser = loopback(daemon)
    code = daemon.client.app.state.services.ui.new_link(caller)  # type: ignore[attr-defined]
    answer = browser.post("/ui/session", json={"code": code}, headers={"Origin": "http://testserver"})
    assert answer.status_code == 200, answer.text
    return browser


@pytest.mark.parametrize("path", [*PAGES, "/ui/static/dashboard.js", "/ui/static/dashboard.css", "/ui/static/uPlot.iife.min.js"])
def test_every_dashboard_answer_carries_a_content_security_policy_without_inline_script(daemon: Daemon, path: str) -> None:
    answer = daemon.client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY and "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    if answer.headers["content-type"].startswith("text/html"):
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", answer.text) == []  # every script is a file
        assert "http://" not in answer.text and "https://" not in answer.text  # nothing from a CDN


def test_pages_hold_no_data_and_fragments_refuse_a_caller_without_a_token(daemon: Daemon) -> None:
    job = daemon.alice.submit("detectnet_v2", "argv", "secret-arg")
    assert job["id"] not in daemon.client.get("/ui/").text
    for path in ("/ui/parts/jobs", f"/ui/parts/job/{job['id']}", f"/ui/parts/log/{job['id']}", "/ui/parts/gpus", "/ui/parts/images"):
        answer = daemon.client.get(path)
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized"


def test_markup_in_a_jobs_arguments_and_output_is_shown_as_text(daemon: Daemon) -> None:
    job = daemon.alice.submit("detectnet_v2", "argv", "<script>alert(1)</script>")
    daemon.alice.wait_for(job["id"], "succeeded")
    assert "<script>" not in daemon.alice.get("/ui/parts/jobs").text
    detail = daemon.alice.get(f"/ui/parts/job/{job['id']}").text
    assert "<script>alert(1)</script>" not in detail and "&lt;script&gt;alert(1)&lt;/script&gt;" in detail
    output = daemon.alice.get(f"/ui/parts/log/{job['id']}")
    assert "<script>alert(1)</script>" in output.text
    assert output.headers["content-type"].startswith("text/plain") and output.headers["x-content-type-options"] == "nosniff"


def test_a_user_sees_only_their_own_jobs_and_an_admin_sees_everyones(daemon: Daemon) -> None:
    mine = daemon.alice.submit("detectnet_v2", "argv", "a")["id"]
    theirs = daemon.bob.submit("detectnet_v2", "argv", "b")["id"]
    assert mine in daemon.alice.get("/ui/parts/jobs").text and theirs not in daemon.alice.get("/ui/parts/jobs").text
    assert daemon.alice.get(f"/ui/parts/job/{theirs}").status_code == 404
    assert daemon.alice.get(f"/ui/parts/log/{theirs}").status_code == 404
    assert daemon.alice.post(f"/ui/jobs/{theirs}/rerun", headers={"Origin": "http://testserver"}).status_code == 404
    everyone = daemon.admin.get("/ui/parts/jobs").text
    assert mine in everyone and theirs in everyone
    only_bob = daemon.admin.get("/ui/parts/jobs", params={"owner": "1002"}).text
    assert theirs in only_bob and mine not in only_bob


def test_the_jobs_table_pages_by_the_apis_cursor_and_filters_by_status_and_task(daemon: Daemon) -> None:
    ids = [daemon.alice.submit("yolo_v4" if n % 10 == 0 else "detectnet_v2", "exit", "0")["id"] for n in range(55)]
    for job_id in ids:
        daemon.alice.wait_for(job_id, "succeeded")
    first = daemon.alice.get("/ui/parts/jobs")
    assert first.text.count("<tr") == 50 and ids[-1] in first.text
    cursor = first.headers["x-next-cursor"]
    second = daemon.alice.get("/ui/parts/jobs", params={"cursor": cursor})
    assert second.text.count("<tr") == 5 and ids[0] in second.text and second.headers["x-next-cursor"] == ""
    yolo = daemon.alice.get("/ui/parts/jobs", params={"task": "yolo_v4"}).text
    assert yolo.count("<tr") == 6
    assert "No jobs." in daemon.alice.get("/ui/parts/jobs", params={"status": "running"}).text


def test_a_cross_site_request_changes_nothing(daemon: Daemon) -> None:
    job = daemon.alice.submit("detectnet_v2", "hold", "xsite")
    daemon.alice.wait_for_logs(job["id"], b"holding xsite\n")
    cancel = f"/v1/jobs/{job['id']}/cancel"
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
        answer = daemon.alice.post(cancel, headers=headers)
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "cross_site_request"
    assert daemon.alice.job(job["id"])["status"] == "running"
    assert daemon.alice.post(cancel, headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}).status_code == 202
    daemon.alice.wait_for(job["id"], "cancelled")


def test_a_one_time_link_opens_one_session_and_a_replayed_link_opens_nothing(daemon: Daemon) -> None:
    job = daemon.alice.submit("detectnet_v2", "argv", "mine")["id"]
    theirs = daemon.bob.submit("detectnet_v2", "argv", "not mine")["id"]
    browser = loopback(daemon)
    code = daemon.client.app.state.services.ui.new_link(ALICE)  # type: ignore[attr-defined]
    opened = browser.post("/ui/session", json={"code": code}, headers={"Origin": "http://testserver"})
    cookie = opened.headers["set-cookie"]
    assert opened.status_code == 200 and "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    rows = browser.get("/ui/parts/jobs").text
    assert job in rows and theirs not in rows
    replay = loopback(daemon).post("/ui/session", json={"code": code}, headers={"Origin": "http://testserver"})
    assert replay.status_code == 401 and "set-cookie" not in replay.headers


def test_a_link_opens_nothing_for_another_account_and_stays_good_for_its_own(daemon: Daemon) -> None:
    code = daemon.client.app.state.services.ui.new_link(ALICE)  # type: ignore[attr-defined]
    for port in (40002, 40009):  # bob's browser; a connection whose owner the daemon cannot name
        refused = loopback(daemon, port).post("/ui/session", json={"code": code}, headers={"Origin": "http://testserver"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "link_not_yours"
        assert "set-cookie" not in refused.headers
    assert (
        "made for another account"
        in loopback(daemon, 40002)
        .post("/ui/session", json={"code": code}, headers={"Origin": "http://testserver"})
        .json()["error"]["message"]
    )
    opened = loopback(daemon).post("/ui/session", json={"code": code}, headers={"Origin": "http://testserver"})
    assert opened.status_code == 200  # bob's tries took nothing from alice


def test_a_link_is_redeemed_only_on_loopback(daemon: Daemon) -> None:
    code = daemon.client.app.state.services.ui.new_link(ALICE)  # type: ignore[attr-defined]
    elsewhere = TestClient(daemon.client.app, client=("192.0.2.7", 40000))
    refused = elsewhere.post("/ui/session", json={"code": code}, headers={"Origin": "http://testserver"})
    assert refused.status_code == 401 and "only on this machine's loopback" in refused.json()["error"]["message"]


def test_a_session_is_honoured_only_from_loopback_and_ends_at_sign_out(daemon: Daemon) -> None:
    browser = open_session(daemon)
    session = browser.cookies["tao_ui_session"]
    elsewhere = TestClient(daemon.client.app, client=("192.0.2.7", 40000), cookies={"tao_ui_session": session})
    assert elsewhere.get("/ui/parts/jobs").status_code == 401
    assert browser.post("/ui/logout", headers={"Origin": "http://testserver"}).status_code == 200
    stale = TestClient(daemon.client.app, client=("127.0.0.1", 40000), cookies={"tao_ui_session": session})
    assert stale.get("/ui/parts/jobs").status_code == 401


def test_a_post_with_the_session_cookie_but_no_origin_is_refused(daemon: Daemon) -> None:
    browser = open_session(daemon)
    job = daemon.alice.submit("detectnet_v2", "hold", "noorigin")
    answer = browser.post(f"/v1/jobs/{job['id']}/cancel")
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "cross_site_request"
    assert browser.post(f"/v1/jobs/{job['id']}/cancel", headers={"Origin": "http://testserver"}).status_code == 202
    daemon.alice.wait_for(job["id"], "cancelled")


def test_a_dashboard_link_is_given_over_the_unix_socket_only(daemon: Daemon) -> None:
    answer = daemon.alice.post("/ui/links")
    assert answer.status_code == 403 and "Unix socket" in answer.json()["error"]["message"]


def test_run_again_submits_the_same_request_as_a_new_job_of_the_caller(daemon: Daemon) -> None:
    first = daemon.alice.submit("detectnet_v2", "argv", "again", "--flag")
    daemon.alice.wait_for(first["id"], "succeeded")
    answer = daemon.alice.post(f"/ui/jobs/{first['id']}/rerun", headers={"Origin": "http://testserver"})
    assert answer.status_code == 201
    second = daemon.alice.wait_for(answer.json()["id"], "succeeded")
    assert second["id"] != first["id"]
    same = ("task", "subtask", "args", "command", "image", "mounts", "envs", "docker_options", "owner_uid")
    assert {key: second[key] for key in same} == {key: first[key] for key in same}
    assert daemon.alice.logs(second["id"]) == daemon.alice.logs(first["id"])


def test_load_earlier_reads_the_window_that_ends_where_the_page_begins(daemon: Daemon) -> None:
    job = daemon.alice.submit("detectnet_v2", "lines", "20000")
    daemon.alice.wait_for(job["id"], "succeeded")
    whole = daemon.alice.logs(job["id"])
    tail = daemon.alice.get(f"/ui/parts/log/{job['id']}")
    start, end = int(tail.headers["x-log-start"]), int(tail.headers["x-log-end"])
    assert end == len(whole) and end - start == 64 * 1024 and tail.content == whole[start:]
    earlier = daemon.alice.get(f"/ui/parts/log/{job['id']}", params={"before": start})
    assert earlier.content == whole[int(earlier.headers["x-log-start"]) : start]


def test_the_gpu_queue_and_images_pages_show_what_the_caller_may_see(daemon: Daemon) -> None:
    assert "No job waits." in daemon.alice.get("/ui/parts/gpus").text
    images = daemon.alice.get("/ui/parts/images").text
    assert "tao-test/toolkit:1" in images and "data-pull" not in images
    assert 'data-pull="tao-test/toolkit:1"' in daemon.admin.get("/ui/parts/images").text


def test_the_session_cookie_names_its_caller_to_the_json_api_too(daemon: Daemon) -> None:
    browser = open_session(daemon)
    job = daemon.alice.submit("detectnet_v2", "argv", "api")["id"]
    listed = browser.get("/v1/jobs").json()["jobs"]
    assert [each["id"] for each in listed] == [job]
    assert isinstance(browser, httpx.Client)


@pytest.mark.parametrize(
    "filters",
    [{}, {"statuses": [JobStatus.running]}, {"task": "unet"}, {"owner_uid": 1001}, {"task": "unet", "owner_uid": 1001}],
    ids=["none", "status", "task", "owner", "task-and-owner"],
)
def test_every_page_of_the_jobs_table_is_an_index_search_at_any_depth(daemon: Daemon, filters: dict[str, Any]) -> None:
    """Pages come by keyset: the 2,000th page is a search from the cursor, as cheap as the first, whatever the filter."""
    engine = daemon.client.app.state.services.database  # type: ignore[attr-defined]
    for cursor in (None, 100_000):
        query = page_query(filters.get("statuses"), 51, cursor, None, filters.get("owner_uid"), filters.get("task"))
        sql = str(query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
        with engine.connect() as connection:
            plan = [row[-1] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
        assert not any("TEMP B-TREE" in step for step in plan), plan  # never sorts the matches
        if cursor is not None or filters:
            assert all(step.startswith("SEARCH") for step in plan), plan  # starts at the cursor or the filter, never scans
        if filters:
            assert all("USING INDEX ix_job_" in step for step in plan), plan  # the filter's own index, from the cursor on


def test_a_log_websocket_opened_from_another_origin_is_refused(daemon: Daemon) -> None:
    job = daemon.alice.submit("detectnet_v2", "argv", "stream")
    daemon.alice.wait_for(job["id"], "succeeded")
    path = f"/v1/jobs/{job['id']}/logs"
    with pytest.raises(WebSocketDisconnect) as refused:
        with daemon.client.websocket_connect(path, headers={**daemon.alice.headers, "Origin": "https://evil.example"}):
            pass
    assert refused.value.code == 1008
    with daemon.client.websocket_connect(path, headers={**daemon.alice.headers, "Origin": "http://testserver"}) as ws:
        assert b"stream" in ws.receive_bytes()


def test_the_gpus_page_shows_each_holder_to_who_may_see_it_and_the_line_with_places(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(gpus="0")
    holder = daemon.alice.submit("detectnet_v2", "hold", "gpu", gpus="1")
    daemon.alice.wait_for(holder["id"], "running")
    waiting = daemon.bob.submit("detectnet_v2", "exit", "0", gpus="1")
    rows = daemon.bob.get("/ui/parts/jobs").text
    assert "queued (GPU line #1: " in rows and "asks 1" in rows
    bobs = daemon.bob.get("/ui/parts/gpus").text
    assert "another user's job" in bobs and holder["id"] not in bobs and waiting["id"] in bobs
    alices = daemon.alice.get("/ui/parts/gpus").text
    assert f'href="/ui/jobs/{holder["id"]}"' in alices and waiting["id"] not in alices
    daemon.engine.release("gpu")
    daemon.bob.wait_for(waiting["id"], "succeeded")


def test_the_jobs_table_reaches_the_last_of_100000_jobs_by_cursor(daemon: Daemon) -> None:
    """100,000 rows written straight to the table; the fragment's cursor reaches the oldest, page by page from any depth."""
    engine = daemon.client.app.state.services.database  # type: ignore[attr-defined]
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO job (id, task, args, command, image, status, mounts, envs, docker_options, gpu_request, gpus, "
            "pull_policy, owner_uid, owner_gid, cancel_requested, created_at) "
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) "
            "SELECT 'bulk' || i, 'unet', '[]', '[]', 'tao-test/toolkit:1', 'succeeded', '[]', '{}', '{}', '', '[]', "
            "'missing', 1001, 1001, 0, '2026-01-01 00:00:00' FROM n"
        )
    first = daemon.alice.get("/ui/parts/jobs")
    assert "bulk100000" in first.text and first.text.count("<tr") == 50
    deep = daemon.alice.get("/ui/parts/jobs", params={"cursor": "51"})  # the last page: seq 1 to 50
    assert deep.text.count("<tr") == 50 and "bulk1<" in deep.text and deep.headers["x-next-cursor"] == ""
    by_task = daemon.alice.get("/ui/parts/jobs", params={"task": "unet", "cursor": "101"})
    assert by_task.text.count("<tr") == 50 and by_task.headers["x-next-cursor"] == "51"


def test_the_command_line_is_one_quoted_line_in_the_table_and_a_copyable_one_on_the_jobs_page(daemon: Daemon) -> None:
    job = daemon.alice.submit("detectnet_v2", "argv", "a b", "-r", "/workspace/results")
    line = "tao detectnet_v2 argv &#39;a b&#39; -r /workspace/results"  # as a shell takes it back, escaped for the page
    assert f'<code class="mono" title="{line}">{line}</code>' in daemon.alice.get("/ui/parts/jobs").text
    detail = daemon.alice.get(f"/ui/parts/job/{job['id']}").text
    assert f'<code id="job-command" class="mono">{line}</code>' in detail
    assert 'data-action="copy" data-copy="job-command"' in detail


def test_sizes_are_shown_in_units(daemon: Daemon) -> None:
    options = {"DockerOptions": {"shm_size": "16G", "mem_limit": 1536 * 1024**2}}
    job = daemon.alice.submit("detectnet_v2", "argv", "x", launch_config=options)
    detail = daemon.alice.get(f"/ui/parts/job/{job['id']}").text
    assert "&#34;shm_size&#34;: &#34;16 GiB&#34;" in detail and "&#34;mem_limit&#34;: &#34;1.5 GiB&#34;" in detail
    images = daemon.admin.get("/ui/parts/images").text
    assert '<td class="size">18.0 kB</td>' in images  # the fake engine's image: 1000 bytes a character of its name


def test_the_jobs_page_masks_the_values_of_secret_envs_as_tao_show_does(daemon: Daemon) -> None:
    envs = {"Envs": [{"variable": "HF_TOKEN", "value": "hf_sekrit"}, {"variable": "CUDA_DEVICE_ORDER", "value": "PCI_BUS_ID"}]}
    job = daemon.alice.submit("detectnet_v2", "argv", "x", launch_config=envs)
    assert daemon.alice.job(job["id"])["envs"]["HF_TOKEN"] == "hf_sekrit"  # the API gives its owner what they set
    detail = daemon.alice.get(f"/ui/parts/job/{job['id']}").text
    assert "hf_sekrit" not in detail
    assert "&#34;HF_TOKEN&#34;: &#34;****&#34;" in detail and "&#34;CUDA_DEVICE_ORDER&#34;: &#34;PCI_BUS_ID&#34;" in detail

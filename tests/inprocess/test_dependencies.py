"""Dependencies between jobs in process (`after`, `after_any`): waiting, settling, collapsing chains, restarts.

The fake engine's `hold NAME` keeps a dependency running until the test releases it, so each
check sees the dependent waiting first; `exit N` ends one as a failure.
"""

from __future__ import annotations

from tests.inprocess.conftest import Daemon


def launched_ids(daemon: Daemon) -> list[str]:
    return [spec.job_id for spec in daemon.engine.launched]


def test_a_job_after_another_waits_without_a_run_then_starts_when_it_succeeds(daemon: Daemon) -> None:
    first = daemon.alice.submit("detectnet_v2", "hold", "first")
    daemon.alice.wait_for_logs(first["id"], b"holding first\n")
    second = daemon.alice.submit("detectnet_v2", "argv", "two", after=[first["id"]])
    shown = daemon.alice.job(second["id"])
    assert shown["status"] == "queued" and shown["after"] == [first["id"]]
    assert shown["condition"] == f"waiting for {first['id']}"
    assert second["id"] not in launched_ids(daemon)  # no run, no worker while it waits
    daemon.engine.release("first")
    assert daemon.alice.wait_for(second["id"], "succeeded", "failed", "cancelled", "error")["status"] == "succeeded"


def test_a_failed_dependency_cancels_the_chain_without_a_run(daemon: Daemon) -> None:
    first = daemon.alice.submit("detectnet_v2", "hold", "gate")
    daemon.alice.wait_for_logs(first["id"], b"holding gate\n")
    failing = daemon.alice.submit("detectnet_v2", "exit", "3", after_any=[first["id"]])
    second = daemon.alice.submit("detectnet_v2", "argv", "b", after=[failing["id"]])
    third = daemon.alice.submit("detectnet_v2", "argv", "c", after=[second["id"]])
    daemon.engine.release("gate")
    assert daemon.alice.wait_for(failing["id"], "failed")["exit_code"] == 3
    two = daemon.alice.wait_for(second["id"], "cancelled")
    three = daemon.alice.wait_for(third["id"], "cancelled")
    assert two["error"] == f"not started: its dependency {failing['id']} failed (exit code 3)"
    assert three["error"] == f"not started: its dependency {second['id']} was cancelled"
    assert second["id"] not in launched_ids(daemon) and third["id"] not in launched_ids(daemon)


def test_after_any_runs_whatever_the_end(daemon: Daemon) -> None:
    failing = daemon.alice.submit("detectnet_v2", "exit", "4")
    cleanup = daemon.alice.submit("detectnet_v2", "argv", "cleanup", after_any=[failing["id"]])
    assert daemon.alice.wait_for(cleanup["id"], "succeeded", "cancelled")["status"] == "succeeded"


def test_cancelling_a_waiting_job_cancels_its_dependents(daemon: Daemon) -> None:
    first = daemon.alice.submit("detectnet_v2", "hold", "long")
    second = daemon.alice.submit("detectnet_v2", "argv", "b", after=[first["id"]])
    third = daemon.alice.submit("detectnet_v2", "argv", "c", after=[second["id"]])
    assert daemon.alice.post(f"/v1/jobs/{second['id']}/cancel").status_code == 202
    assert daemon.alice.wait_for(third["id"], "cancelled")["error"] == f"not started: its dependency {second['id']} was cancelled"
    daemon.engine.release("long")
    assert daemon.alice.wait_for(first["id"], "succeeded")["status"] == "succeeded"


def test_unknown_and_other_users_jobs_are_refused_alike(daemon: Daemon) -> None:
    bobs = daemon.bob.submit("detectnet_v2", "argv", "x")
    before = daemon.alice.get("/v1/jobs").json()["jobs"]
    for job_id in ("nosuchjob", bobs["id"]):
        refused = daemon.alice.submit("detectnet_v2", "argv", "x", expect=422, after=[job_id])["error"]
        assert refused["field"] == "after[0]"
        assert refused["message"] == f"--after {job_id}: no job {job_id!r} of yours to wait for; `tao list --all` shows them"
    assert daemon.alice.get("/v1/jobs").json()["jobs"] == before  # nothing recorded
    # An admin may wait for anyone's job.
    admins = daemon.admin.submit("detectnet_v2", "argv", "y", after=[bobs["id"]])
    assert daemon.admin.wait_for(admins["id"], "succeeded")["after"] == [bobs["id"]]


def test_a_restart_keeps_every_edge(start_daemon) -> None:  # type: ignore[no-untyped-def]
    first: Daemon = start_daemon()
    head = first.alice.submit("detectnet_v2", "hold", "head")
    first.alice.wait_for_logs(head["id"], b"holding head\n")
    middle = first.alice.submit("detectnet_v2", "argv", "m", after=[head["id"]])
    tail = first.alice.submit("detectnet_v2", "argv", "t", after=[middle["id"]])
    first.stop()

    second: Daemon = start_daemon()
    assert second.alice.job(tail["id"])["condition"] == f"waiting for {middle['id']}"
    second.engine.release("head")
    assert second.alice.wait_for(tail["id"], "succeeded", "cancelled")["status"] == "succeeded"
    assert second.alice.job(middle["id"])["status"] == "succeeded"


def test_a_failed_task_runs_again_as_the_same_job_and_each_attempts_output_stays(start_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon: Daemon = start_daemon(retry_backoff=0)
    failing = daemon.alice.submit("detectnet_v2", "exit", "5", retries=2)
    after = daemon.alice.submit("detectnet_v2", "argv", "after", after_any=[failing["id"]])
    done = daemon.alice.wait_for(failing["id"], "failed", "succeeded", "error")
    assert (done["status"], done["exit_code"], done["attempt"], done["id"]) == ("failed", 5, 3, failing["id"])
    assert [spec.job_id for spec in daemon.engine.launched].count(failing["id"]) == 3
    events = daemon.alice.get(f"/v1/jobs/{failing['id']}/events").json()["events"]
    assert [event["data"]["next_attempt"] for event in events if event["type"] == "retry"] == [2, 3]
    whole = daemon.alice.logs(failing["id"])
    parts = [daemon.alice.get(f"/v1/jobs/{failing['id']}/logs", params={"attempt": k}).content for k in (1, 2, 3)]
    assert b"".join(parts) == whole and all(parts)
    refused = daemon.alice.get(f"/v1/jobs/{failing['id']}/logs", params={"attempt": 4})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "attempt"
    # The job waiting for it started once, after its last attempt.
    assert daemon.alice.wait_for(after["id"], "succeeded")["started_at"] >= done["finished_at"]


def test_a_cancel_and_a_launch_failure_are_not_retried(start_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon: Daemon = start_daemon(retry_backoff=0)
    missing = daemon.alice.submit("missing", None, retries=3)
    assert daemon.alice.wait_for(missing["id"], "error")["attempt"] == 1
    held = daemon.alice.submit("detectnet_v2", "hold", "never", retries=3)
    daemon.alice.wait_for_logs(held["id"], b"holding never\n")
    daemon.alice.post(f"/v1/jobs/{held['id']}/cancel")
    assert daemon.alice.wait_for(held["id"], "cancelled")["attempt"] == 1

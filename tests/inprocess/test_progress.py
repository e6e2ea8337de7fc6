"""Training progress in process: the status file a held job's results dir holds, written by the test, read by the daemon.

Real routes, runner, follower thread, SQLite and files; the fake engine holds the job (`hold NAME`)
until the test releases it, so progress is checked while the job runs, never raced.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tao_server.backends.slurm.slurm_settings import SlurmSettings
from tao_server.errors import StorageFull
from tao_server.jobs.progress.metric_store import KEEP_RECENT, MAX_POINTS, MetricStore
from tao_server.jobs.progress.status_locate import SharedFilesystem
from tao_server.jobs.progress.tracker import Ratio
from tao_server.jobs.store import JobStore
from tests.inprocess.conftest import Caller, Daemon

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "status-json"


def mounts(source: Path) -> dict[str, Any]:
    return {"Mounts": [{"source": str(source), "destination": "/workspace"}]}


def append(path: Path, *lines: bytes | dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as file:
        for line in lines:
            file.write((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n")


def until(condition: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """Poll for `condition`; the timeout is a safety net only."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)
    return found


def held(caller: Caller, name: str, source: Path, *args: str, **body: Any) -> dict[str, Any]:
    job = caller.submit("detectnet_v2", "hold", name, *args, launch_config=mounts(source), **body)
    caller.wait_for_logs(job["id"], f"holding {name}\n".encode())
    return job


def series(caller: Caller, job_id: str) -> dict[str, list[tuple[int | None, int | None, float]]]:
    answer = caller.get(f"/v1/jobs/{job_id}/metrics")
    assert answer.status_code == 200, answer.text
    return {name: [(p["epoch"], p["step"], p["value"]) for p in points] for name, points in answer.json()["series"].items()}


def epoch(number: int, loss: float, of: int = 80) -> dict[str, Any]:
    return {
        "epoch": number,
        "max_epoch": of,
        "eta": "0:41:10",
        "status": "RUNNING",
        "message": "Training loop in progress",
        "graphical": {"loss": loss},
    }


def test_progress_and_series_appear_while_the_job_runs_and_are_complete_once_it_ends(daemon: Daemon, tmp_path: Path) -> None:
    status = tmp_path / "results" / "train" / "status.json"  # TAO 5 writes one dir per action
    job = held(daemon.admin, "train", tmp_path, "-r", "/workspace/results")
    append(status, epoch(1, 0.9), epoch(2, 0.7))
    shown = until(
        lambda: (daemon.admin.job(job["id"])["progress"] or {}).get("epoch") == 2 and daemon.admin.job(job["id"]), "epoch 2 shown"
    )
    progress = shown["progress"]
    assert (progress["epoch"], progress["max_epoch"], progress["fraction"], progress["status"]) == (2, 80, 0.025, "RUNNING")
    assert 2400 < progress["eta_seconds"] <= 2470
    assert shown["progress_unavailable"] is None
    assert series(daemon.admin, job["id"]) == {"loss": [(1, None, 0.9), (2, None, 0.7)]}
    listed = daemon.admin.get("/v1/jobs").json()["jobs"][0]
    assert listed["id"] == job["id"] and listed["progress"]["epoch"] == 2

    # The last line, written just before the end without its newline, is read before the end is shown.
    with status.open("ab") as file:
        file.write(json.dumps({**epoch(80, 0.1), "status": "SUCCESS", "kpi": {"mAP": 0.8}}).encode())
    daemon.engine.release("train")
    done = daemon.admin.wait_for(job["id"], "succeeded")
    assert done["progress"]["epoch"] == 80 and done["progress"]["fraction"] == 1.0 and done["progress"]["status"] == "SUCCESS"
    assert done["progress"]["eta_seconds"] is None and done["progress"]["kpi"] == {"mAP": 0.8}
    assert series(daemon.admin, job["id"]) == {"loss": [(1, None, 0.9), (2, None, 0.7), (80, None, 0.1)], "mAP": [(80, None, 0.8)]}
    events = daemon.admin.get(f"/v1/jobs/{job['id']}/events").json()["events"]
    told = [event["data"] for event in events if event["type"] == "status"]
    assert told == [
        {"status": "RUNNING", "message": "Training loop in progress"},
        {"status": "SUCCESS", "message": "Training loop in progress"},
    ]


def test_a_real_shaped_pytorch_status_file_gives_its_series_as_json_and_csv(daemon: Daemon, tmp_path: Path) -> None:
    job = held(daemon.admin, "pytorch", tmp_path, "results_dir=/workspace/out")
    append(tmp_path / "out" / "status.json", *(FIXTURES / "pytorch-train.jsonl").read_bytes().splitlines())
    daemon.engine.release("pytorch")
    daemon.admin.wait_for(job["id"], "succeeded")
    assert series(daemon.admin, job["id"]) == {
        "mAP": [(1, 200, 0.4127)],
        "train_loss": [(0, 100, 0.7123), (1, 200, 0.5517), (2, 300, 0.4402)],
        "val_loss": [(1, 200, 0.6021)],
    }
    answer = daemon.admin.get(f"/v1/jobs/{job['id']}/metrics").json()
    assert answer["files"] == ["/workspace/out/status.json"] and answer["skipped"] == {} and answer["unavailable"] is None
    csv = daemon.admin.get(f"/v1/jobs/{job['id']}/metrics", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    rows = csv.text.splitlines()
    assert rows[0] == "series,epoch,step,value,time"
    assert rows[1].startswith("mAP,1,200,0.4127,") and rows[1].endswith("Z") and len(rows) == 1 + 5


def test_the_status_file_named_with_status_file_is_followed(daemon: Daemon, tmp_path: Path) -> None:
    job = held(daemon.admin, "named", tmp_path, status_file="/workspace/logs/progress.jsonl")
    append(tmp_path / "logs" / "progress.jsonl", epoch(3, 0.5, of=10))
    until(lambda: daemon.admin.job(job["id"])["progress"], "progress from the named file")
    assert daemon.admin.job(job["id"])["status_file"] == "/workspace/logs/progress.jsonl"
    daemon.engine.release("named")


def test_a_status_file_outside_every_mount_is_warned_of_and_the_job_says_why_it_has_no_progress(daemon: Daemon, tmp_path: Path) -> None:
    job = daemon.admin.submit("detectnet_v2", "exit", "0", launch_config=mounts(tmp_path), status_file="/results/status.json")
    assert job["warnings"] == [
        "--status-file /results/status.json: outside every mount, so the daemon cannot read it and the job shows no progress; "
        "give a path under a mount's destination (Mounts in the launcher config)"
    ]
    done = daemon.admin.wait_for(job["id"], "succeeded")
    assert done["progress"] is None
    assert (
        done["progress_unavailable"]
        == "--status-file /results/status.json is outside every mount: the status file stays inside the container"
    )
    relative = daemon.admin.submit("detectnet_v2", "exit", "0", status_file="status.json", expect=422)
    assert relative["error"]["field"] == "status_file"


def test_a_job_without_a_results_dir_has_no_progress_and_no_reason(daemon: Daemon) -> None:
    done = daemon.admin.wait_for(daemon.admin.submit("detectnet_v2", "exit", "0")["id"], "succeeded")
    assert done["progress"] is None and done["progress_unavailable"] is None
    assert daemon.admin.get(f"/v1/jobs/{done['id']}/metrics").json() == {
        "series": {},
        "files": [],
        "skipped": {},
        "unavailable": None,
        "sampled": [],
    }


def test_what_a_previous_run_left_in_the_results_dir_is_not_this_jobs(daemon: Daemon, tmp_path: Path) -> None:
    status = tmp_path / "results" / "status.json"
    append(status, epoch(80, 0.05), {**epoch(80, 0.05), "status": "SUCCESS"})
    job = held(daemon.admin, "again", tmp_path, "-r", "/workspace/results")
    append(status, epoch(1, 0.95))
    until(lambda: daemon.admin.job(job["id"])["progress"], "the new run's progress")
    daemon.engine.release("again")
    done = daemon.admin.wait_for(job["id"], "succeeded")
    assert done["progress"]["epoch"] == 1
    assert series(daemon.admin, job["id"]) == {"loss": [(1, None, 0.95)]}


def test_a_restarted_daemon_goes_on_from_where_it_read_without_duplicates_or_gaps(
    start_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    first = start_daemon()
    status = tmp_path / "results" / "status.json"
    job = held(first.admin, "restart", tmp_path, "-r", "/workspace/results")
    append(status, *(epoch(n, 1.0 / n) for n in range(1, 4)))
    until(lambda: (first.admin.job(job["id"])["progress"] or {}).get("epoch") == 3, "epochs 1-3 read")
    first.stop()
    append(status, *(epoch(n, 1.0 / n) for n in range(4, 7)))  # written while no daemon runs

    second = start_daemon()
    append(status, *(epoch(n, 1.0 / n) for n in range(7, 9)))
    until(lambda: (second.admin.job(job["id"])["progress"] or {}).get("epoch") == 8, "epochs 4-8 read by the new daemon")
    second.engine.release("restart")
    second.admin.wait_for(job["id"], "succeeded")
    assert series(second.admin, job["id"]) == {"loss": [(n, None, 1.0 / n) for n in range(1, 9)]}
    told = [event for event in second.admin.get(f"/v1/jobs/{job['id']}/events").json()["events"] if event["type"] == "status"]
    assert len(told) == 1  # the message is told once, across the restart too


def test_a_job_that_ended_while_the_daemon_was_down_gets_its_last_lines(start_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    first = start_daemon()
    status = tmp_path / "results" / "status.json"
    job = held(first.admin, "down", tmp_path, "-r", "/workspace/results")
    append(status, epoch(1, 0.5))
    until(lambda: first.admin.job(job["id"])["progress"], "epoch 1 read")
    first.stop()
    append(status, epoch(2, 0.25))
    first.engine.release("down")
    second = start_daemon()
    done = second.admin.wait_for(job["id"], "succeeded")
    assert done["progress"]["epoch"] == 2
    assert series(second.admin, job["id"]) == {"loss": [(1, None, 0.5), (2, None, 0.25)]}


def test_junk_a_huge_line_and_a_truncated_file_leave_the_job_and_the_listing_intact(daemon: Daemon, tmp_path: Path) -> None:
    status = tmp_path / "results" / "status.json"
    job = held(daemon.admin, "junk", tmp_path, "-r", "/workspace/results")
    append(status, epoch(1, 0.5), b"\x00\xff binary junk \x80", b"{" * 70_000, b"x" * (10 * 1024 * 1024), b'{"epoch": NaN}', epoch(2, 0.4))
    until(lambda: (daemon.admin.job(job["id"])["progress"] or {}).get("epoch") == 2, "epoch 2 past the junk")
    status.write_bytes(b"")  # truncated mid-run
    append(status, epoch(3, 0.3))
    until(lambda: (daemon.admin.job(job["id"])["progress"] or {}).get("epoch") == 3, "epoch 3 in the file started again")
    assert daemon.admin.get("/v1/jobs").status_code == 200
    daemon.engine.release("junk")
    daemon.admin.wait_for(job["id"], "succeeded")
    answer = daemon.admin.get(f"/v1/jobs/{job['id']}/metrics").json()
    assert answer["skipped"] == {"invalid_json": 1, "line_too_long": 2, "bad_count": 1, "truncated": 1}
    assert [point["value"] for point in answer["series"]["loss"]] == [0.5, 0.4, 0.3]


def test_a_users_metrics_are_theirs_alone(daemon: Daemon, tmp_path: Path) -> None:
    job = daemon.admin.submit("detectnet_v2", "exit", "0")
    assert daemon.bob.get(f"/v1/jobs/{job['id']}/metrics").status_code == 404
    assert daemon.admin.get(f"/v1/jobs/{job['id']}/metrics", params={"format": "xml"}).status_code == 422


def test_a_rerun_starts_with_no_progress_of_its_own(daemon: Daemon, tmp_path: Path) -> None:
    job = held(daemon.admin, "first", tmp_path, "-r", "/workspace/results")
    append(tmp_path / "results" / "status.json", epoch(1, 0.5))
    until(lambda: daemon.admin.job(job["id"])["progress"], "progress")
    daemon.engine.release("first")
    daemon.admin.wait_for(job["id"], "succeeded")
    again = daemon.admin.post(f"/ui/jobs/{job['id']}/rerun").json()["id"]
    assert daemon.admin.job(again)["progress"] is None


def test_a_series_is_thinned_past_its_limit_keeping_its_start_and_its_newest_points(tmp_path: Path) -> None:
    from tao_server import db

    engine = db.make_engine(tmp_path / "tao.db")
    db.upgrade(engine)
    store = MetricStore(JobStore(engine))
    for n in range(MAX_POINTS + 1):
        store.sample("j", "gpu_utilization", float(n), at=1000.0 + n)
    kept = [point.value for point in store.series("j")["gpu_utilization"]]
    assert len(kept) < MAX_POINTS and kept[0] == 0.0
    assert kept[-KEEP_RECENT:] == [float(n) for n in range(MAX_POINTS + 1 - KEEP_RECENT, MAX_POINTS + 1)]
    # A sampled series shows only the time of each sample: its step is the millisecond it is stored by.
    points = store.series("j")["gpu_utilization"]
    assert all(point.epoch is None and point.step is None for point in points)
    assert points[-1].time.timestamp() == 1000.0 + MAX_POINTS
    engine.dispose()


def test_on_a_cluster_a_results_dir_the_nodes_do_not_share_with_the_daemon_says_so(
    start_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    shared = Path(tempfile.mkdtemp(dir="/dev/shm"))  # the batch scripts' shared dir, on another filesystem than the mount
    try:
        daemon = start_daemon(backend="slurm", slurm=SlurmSettings(shared_dir=shared), places=frozenset({"gpus", "nodes", "time"}))
        job = daemon.admin.submit("detectnet_v2", "exit", "0", "-r", "/workspace/results", launch_config=mounts(tmp_path))
        done = daemon.admin.wait_for(job["id"], "succeeded")
        assert done["progress"] is None
        assert done["progress_unavailable"] == (
            f"{tmp_path} is on a filesystem of the daemon's host (ext4) that the nodes do not share, as they share {shared}: "
            "the status file the task writes on its node is not seen here"
        ).replace("(ext4)", f"({SharedFilesystem(str(shared)).filesystem(str(tmp_path))})")
        assert daemon.admin.get(f"/v1/jobs/{job['id']}/metrics").json()["unavailable"] == done["progress_unavailable"]
    finally:
        shutil.rmtree(shared)


def test_the_dashboard_shows_the_progress_bar_the_kpis_and_the_status_messages(daemon: Daemon, tmp_path: Path) -> None:
    job = held(daemon.admin, "ui", tmp_path, "-r", "/workspace/results")
    append(tmp_path / "results" / "status.json", {**epoch(12, 0.5), "kpi": {"mAP": 0.734, "<b>x</b>": 1}})
    until(lambda: daemon.admin.job(job["id"])["progress"], "progress")
    rows = daemon.admin.get("/ui/parts/jobs").text
    assert '<progress value="0.15" max="1"></progress> 12/80 15% ETA 0:4' in rows
    detail = daemon.admin.get(f"/ui/parts/job/{job['id']}").text
    assert '<th>mAP</th><td class="mono">0.734</td>' in detail and "&lt;b&gt;x&lt;/b&gt;" in detail and "<b>x" not in detail
    assert "RUNNING Training loop in progress" in detail
    page = daemon.client.get(f"/ui/jobs/{job['id']}").text
    assert '<script src="/ui/static/uPlot.iife.min.js" defer></script>' in page and 'id="charts"' in page
    assert "uPlot" not in daemon.client.get("/ui/").text  # only a job's page loads the charts
    daemon.engine.release("ui")


def test_lines_read_while_the_database_refuses_them_are_read_again_once_it_takes_them(daemon: Daemon, tmp_path: Path) -> None:
    tracker = daemon.client.app.state.services.progress  # type: ignore[attr-defined]
    store = tracker._metrics

    class FullDisk:
        """The real store, whose saves fail as a full disk makes them (what JobStore raises then)."""

        tried = 0

        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        def save(self, *args: Any) -> None:
            FullDisk.tried += 1
            raise StorageFull("cannot write the job table tao.db: database or disk is full; free space on that disk (jobs go on)")

    job = held(daemon.admin, "full", tmp_path, "-r", "/workspace/results")
    status = tmp_path / "results" / "status.json"
    append(status, epoch(1, 0.5))
    until(lambda: daemon.admin.job(job["id"])["progress"], "epoch 1 read")
    tracker._metrics = FullDisk()
    append(status, epoch(2, 0.4), epoch(3, 0.3))
    until(lambda: FullDisk.tried >= 2, "two saves refused")
    assert daemon.admin.job(job["id"])["progress"]["epoch"] == 1
    tracker._metrics = store  # room again
    until(lambda: daemon.admin.job(job["id"])["progress"]["epoch"] == 3, "epochs 2 and 3 read again and kept")
    daemon.engine.release("full")
    daemon.admin.wait_for(job["id"], "succeeded")
    assert series(daemon.admin, job["id"]) == {"loss": [(1, None, 0.5), (2, None, 0.4), (3, None, 0.3)]}


def test_each_running_jobs_progress_ratio_and_owner_are_in_memory_for_an_exporter(daemon: Daemon, tmp_path: Path) -> None:
    tracker = daemon.client.app.state.services.progress  # type: ignore[attr-defined]
    job = held(daemon.admin, "ratio", tmp_path, "-r", "/workspace/results")
    append(tmp_path / "results" / "status.json", epoch(20, 0.5))
    until(lambda: job["id"] in tracker.ratios(), "the job's ratio kept")
    assert tracker.ratios()[job["id"]] == Ratio(owner_uid=0, fraction=0.25)
    daemon.engine.release("ratio")
    daemon.admin.wait_for(job["id"], "succeeded")
    assert job["id"] not in tracker.ratios()  # running jobs only

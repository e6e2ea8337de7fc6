"""Training progress on the real engine: the sample toolkit's stand-in training writes status.json as TAO's logger
does, inside its container, and the daemon follows it through the job's mount.

The training waits at a gate before each epoch (TAO_SAMPLE_GATES, tests/integration/conftest.py's
Gates): the test decides when an epoch ends and checks what the daemon shows in between.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tao_server.testing.daemon import Daemon
from tests.integration.conftest import Gates, job_id_of, local_account, tao_as, until, write_mounts

pytestmark = pytest.mark.integration
# After `sh -c SCRIPT`, words the script ignores ($0, $1, ...): where a `run` job's results dir is, as a long option.
RESULTS_DIR = ("sh", "--results_dir", "/workspace/results")


def training_mounts(path: Path, workspace: Path, gates: Gates, **envs: str) -> Path:
    """A launcher config mounting `workspace` at /workspace and the gates at /gates, the training waiting at them."""
    config = {
        "Mounts": [{"source": str(workspace), "destination": "/workspace"}, {"source": str(gates.root), "destination": "/gates"}],
        "Envs": [{"variable": "TAO_SAMPLE_GATES", "value": "/gates"}, *({"variable": k, "value": v} for k, v in envs.items())],
    }
    return write_mounts(path, config)


def progress_of(daemon: Daemon, job_id: str) -> dict[str, Any]:
    return daemon.job(job_id).get("progress") or {}


def at_epoch(daemon: Daemon, job_id: str, epoch: int) -> dict[str, Any]:
    until(lambda: progress_of(daemon, job_id).get("epoch") == epoch, f"job {job_id} shows epoch {epoch}")
    return progress_of(daemon, job_id)


def series(daemon: Daemon, job_id: str) -> dict[str, list[tuple[int | None, float]]]:
    answer = daemon.request("GET", f"/v1/jobs/{job_id}/metrics")
    return {name: [(point["epoch"], point["value"]) for point in points] for name, points in answer["series"].items()}


def test_the_sample_training_shows_its_progress_epoch_by_epoch_and_all_of_it_at_its_end(
    daemon: Daemon, gates: Gates, tmp_path: Path
) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    mounts = training_mounts(tmp_path / "mounts.json", workspace, gates, TAO_SAMPLE_EPOCHS="4", TAO_SAMPLE_EPOCH_SECONDS="30")
    job_id = job_id_of(daemon.tao("--mounts", str(mounts), "-d", "detectnet_v2", "train", "-r", "/workspace/results"))
    until(lambda: progress_of(daemon, job_id).get("status") == "STARTED", "the training's first line")
    gates.open("epoch-1")
    first = at_epoch(daemon, job_id, 1)
    assert (first["max_epoch"], first["fraction"], first["status"], first["message"]) == (4, 0.25, "RUNNING", "Training loop in progress")
    assert 0 < first["eta_seconds"] <= 90  # 3 epochs of 30 s left, as the task estimated
    assert series(daemon, job_id)["loss"] == [(1, 0.6025)]
    listed = daemon.tao("list")
    assert b"PROGRESS" in listed.stdout and b"1/4 25% ETA 0:01:" in listed.stdout, listed.stdout
    gates.open("epoch-2")
    assert at_epoch(daemon, job_id, 2)["fraction"] == 0.5
    assert [epoch for epoch, _ in series(daemon, job_id)["mAP"]] == [1, 2]
    for epoch in (3, 4):
        gates.open(f"epoch-{epoch}")
    done = daemon.wait_for_status(job_id, ("succeeded",))
    assert done["progress"]["epoch"] == 4 and done["progress"]["status"] == "SUCCESS" and done["progress"]["eta_seconds"] is None
    assert set(done["progress"]["kpi"]) == {"mAP", "validation_loss"}
    assert {name: [epoch for epoch, _ in points] for name, points in series(daemon, job_id).items()} == {
        name: [1, 2, 3, 4] for name in ("learning_rate", "loss", "mAP", "validation_loss")
    }
    metrics = daemon.tao("metrics", job_id)
    assert metrics.returncode == 0, metrics.stderr
    lines = metrics.stdout.decode().splitlines()
    assert lines[0].split() == ["EPOCH", "STEP", "learning_rate", "loss", "mAP", "validation_loss"]
    assert [line.split()[0] for line in lines[1:5]] == ["1", "2", "3", "4"]
    assert lines[5].startswith("KPIs (4/4 100%): mAP 0.82  validation_loss ")
    csv = daemon.tao("metrics", "--csv", job_id).stdout.decode().splitlines()
    assert csv[0] == "series,epoch,step,value,time" and len(csv) == 1 + 16
    status_events = [
        event["data"]["status"] for event in daemon.request("GET", f"/v1/jobs/{job_id}/events")["events"] if event["type"] == "status"
    ]
    assert status_events == ["STARTED", "RUNNING", "SUCCESS"]


def test_tao_metrics_follows_the_epochs_as_they_end(daemon: Daemon, gates: Gates, tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    mounts = training_mounts(tmp_path / "mounts.json", workspace, gates)
    job_id = job_id_of(daemon.tao("--mounts", str(mounts), "-d", "detectnet_v2", "train", "results_dir=/workspace/results"))
    follower = daemon.popen_tao("metrics", "-f", job_id)
    assert follower.stdout is not None
    gates.open("epoch-1")
    gates.open("epoch-2")
    # A row is printed once the next has begun: epoch 1's is complete once epoch 2's line is read.
    assert follower.stdout.readline().split()[:2] == [b"EPOCH", b"STEP"]
    assert follower.stdout.readline().split()[0] == b"1"
    gates.open("epoch-3")
    out, err = follower.communicate(timeout=120)
    assert follower.returncode == 0, err
    assert [line.split()[0] for line in out.decode().splitlines()] == ["2", "3", "KPIs"]
    assert daemon.job(job_id)["status"] == "succeeded"
    assert (workspace / "results" / "train" / "status.json").exists()  # TAO 5's layout: a dir per action


def test_progress_survives_a_daemon_restart_mid_run_without_duplicates_or_gaps(
    new_daemon: Callable[..., Daemon], gates: Gates, tmp_path: Path
) -> None:
    daemon = new_daemon().start()
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    mounts = training_mounts(tmp_path / "mounts.json", workspace, gates, TAO_SAMPLE_EPOCHS="6")
    job_id = job_id_of(daemon.tao("--mounts", str(mounts), "-d", "detectnet_v2", "train", "-r", "/workspace/results"))
    gates.open("epoch-1")
    gates.open("epoch-2")
    at_epoch(daemon, job_id, 2)
    daemon.stop(signal.SIGKILL)  # no chance to save anything more
    gates.open("epoch-3")  # written while no daemon runs
    status = workspace / "results" / "status.json"
    until(lambda: b'"epoch": 3' in status.read_bytes(), "epoch 3 written")
    daemon.start()
    at_epoch(daemon, job_id, 3)
    for epoch in (4, 5, 6):
        gates.open(f"epoch-{epoch}")
    done = daemon.wait_for_status(job_id, ("succeeded",))
    assert done["progress"]["epoch"] == 6
    assert [epoch for epoch, _ in series(daemon, job_id)["loss"]] == [1, 2, 3, 4, 5, 6]


def test_a_status_file_named_with_status_file_is_followed(daemon: Daemon, gates: Gates, tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    mounts = training_mounts(tmp_path / "mounts.json", workspace, gates)
    line = json.dumps({"epoch": 5, "max_epoch": 10, "status": "RUNNING", "graphical": {"loss": 0.25}})
    script = f"mkdir -p /workspace/logs && echo '{line}' >> /workspace/logs/progress.json && {gates.wait('end')}"
    job_id = job_id_of(
        daemon.tao("--mounts", str(mounts), "--status-file", "/workspace/logs/progress.json", "-d", "unet", "run", "sh", "-c", script)
    )
    assert at_epoch(daemon, job_id, 5)["fraction"] == 0.5
    assert daemon.job(job_id)["status"] == "running"
    gates.open("end")
    daemon.wait_for_status(job_id, ("succeeded",))
    assert series(daemon, job_id) == {"loss": [(5, 0.25)]}


def test_a_status_file_linked_to_a_file_outside_the_mount_yields_nothing(daemon: Daemon, gates: Gates, tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    (workspace / "results").mkdir(parents=True)
    secret = tmp_path / "secret.json"  # on the host, outside the mount: what the link names there
    secret.write_text(json.dumps({"epoch": 99, "message": "the host's secret"}) + "\n")
    mounts = training_mounts(tmp_path / "mounts.json", workspace, gates)
    # Written by the task inside its container: links to a file of the host's, and to the container's own /etc/passwd.
    script = f"ln -s {secret} /workspace/results/status.json && mkdir /workspace/results/train && ln -s /etc/passwd /workspace/results/train/status.json && {gates.wait('end')}"
    job_id = job_id_of(daemon.tao("--mounts", str(mounts), "-d", "unet", "run", "sh", "-c", script, *RESULTS_DIR))
    daemon.wait_for_status(job_id, ("running",))
    until(lambda: (workspace / "results" / "train" / "status.json").is_symlink(), "the links made")
    gates.open("end")
    done = daemon.wait_for_status(job_id, ("succeeded",))
    assert done["progress"] is None
    metrics = daemon.request("GET", f"/v1/jobs/{job_id}/metrics")
    assert metrics["series"] == {} and metrics["skipped"] == {"unsafe_file": 2}
    assert "the host's secret" not in json.dumps(daemon.request("GET", f"/v1/jobs/{job_id}/events"))


def test_a_huge_line_binary_junk_a_fifo_and_a_truncated_file_leave_the_job_and_the_listing_intact(
    daemon: Daemon, gates: Gates, tmp_path: Path
) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    mounts = training_mounts(tmp_path / "mounts.json", workspace, gates)
    good = json.dumps({"epoch": 1, "max_epoch": 2, "graphical": {"loss": 0.5}})
    last = json.dumps({"epoch": 2, "max_epoch": 2, "graphical": {"loss": 0.25}})
    status = "/workspace/results/status.json"
    script = " && ".join(
        [
            "mkdir -p /workspace/results/fifo",
            "mkfifo /workspace/results/fifo/status.json",  # a status file one level below that is a FIFO
            f"echo '{good}' > {status}",
            f"dd if=/dev/zero bs=1048576 count=10 2>/dev/null >> {status}",  # a 10 MB line of NUL bytes
            f"echo >> {status}",
            f"dd if=/dev/urandom bs=4096 count=16 2>/dev/null >> {status}",  # binary junk
            f"echo >> {status}",
            gates.wait("truncate"),
            f"truncate -s 0 {status}",
            f"echo '{last}' >> {status}",
            gates.wait("end"),
        ]
    )
    job_id = job_id_of(daemon.tao("--mounts", str(mounts), "-d", "unet", "run", "sh", "-c", script, *RESULTS_DIR))
    at_epoch(daemon, job_id, 1)
    gates.open("truncate")
    at_epoch(daemon, job_id, 2)
    listed = daemon.tao("list", "--all")
    assert listed.returncode == 0 and job_id.encode() in listed.stdout
    gates.open("end")
    done = daemon.wait_for_status(job_id, ("succeeded",))
    assert done["progress"]["fraction"] == 1.0
    metrics = daemon.request("GET", f"/v1/jobs/{job_id}/metrics")
    assert metrics["series"]["loss"] == [
        {"epoch": 1, "step": None, "value": 0.5, "time": metrics["series"]["loss"][0]["time"]},
        {"epoch": 2, "step": None, "value": 0.25, "time": metrics["series"]["loss"][1]["time"]},
    ]
    assert metrics["skipped"]["line_too_long"] >= 1 and metrics["skipped"]["truncated"] == 1
    assert metrics["skipped"]["unsafe_file"] == 1  # the FIFO, never opened for reading


def test_a_users_job_writes_progress_the_daemon_reads_as_theirs(shared_daemon: Daemon, unprivileged_user: tuple[str, int, int]) -> None:
    _, uid, gid = unprivileged_user
    workspace = Path(shared_daemon.home) / "workspace"
    (workspace / "specs").mkdir(parents=True)
    (workspace / "specs" / "train.yaml").write_text("results_dir: /workspace/results\n")  # TAO 5: the results dir in the spec
    for path in (workspace, workspace / "specs", workspace / "specs" / "train.yaml"):
        os.chown(path, uid, gid)
    mounts = write_mounts(Path(shared_daemon.home) / "mounts.json", {"Mounts": [{"source": str(workspace), "destination": "/workspace"}]})
    Path(mounts).chmod(0o644)
    result = tao_as(shared_daemon, unprivileged_user, "--mounts", str(mounts), "detectnet_v2", "train", "-e", "/workspace/specs/train.yaml")
    assert result.returncode == 0, result.stderr.decode()
    job_id = json.loads(tao_as(shared_daemon, unprivileged_user, "list", "--all", "--json").stdout)[0]["id"]
    done = shared_daemon.job(job_id)
    assert done["progress"]["epoch"] == 3 and done["progress"]["status"] == "SUCCESS"
    assert (workspace / "results" / "train" / "status.json").stat().st_uid == uid
    other = local_account("tao-test-ui2")
    assert tao_as(shared_daemon, other, "metrics", job_id).returncode == 125  # another user's job is unknown to them


def test_a_results_dir_outside_every_mount_is_said_by_tao_show(daemon: Daemon) -> None:
    job_id = job_id_of(daemon.tao("-d", "detectnet_v2", "train", "-r", "/tmp/results"))
    daemon.wait_for_status(job_id, ("succeeded",))
    shown = daemon.tao("show", job_id).stdout.decode()
    assert "progress:  unavailable: the results dir /tmp/results is outside every mount" in shown
    assert b"n/a" in daemon.tao("list", "--all").stdout

"""Where a job's status file is (jobs/progress/status_locate.py): its results dir from its arguments or spec, through its mounts."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tao_server.jobs.progress.status_locate import Place, SharedFilesystem, locate, spec_results_dir
from tao_server.models import Job


def job(args: list[str], mounts: list[tuple[str, str]], subtask: str | None = "train", status_file: str | None = None) -> Job:
    return Job(
        id="j1",
        task="detectnet_v2",
        subtask=subtask,
        image="i",
        args=args,
        mounts=[{"source": source, "destination": destination, "read_only": False} for source, destination in mounts],
        status_file=status_file,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["-e", "/specs/x.txt", "-r", "/workspace/results"],
        ["--results_dir", "/workspace/results"],
        ["--results_dir=/workspace/results"],
        ["results_dir=/workspace/results"],
        ["train.results_dir=/workspace/results/"],
        ["+results_dir=/workspace/./results"],
    ],
)
def test_the_results_dir_in_each_of_taos_spellings_is_found_on_the_host(args: list[str]) -> None:
    located = locate(job(args, [("/home/alice/tao", "/workspace")]), owner=None)
    assert located is not None and located.unavailable is None
    assert located.places == [Place("/workspace/results", "/home/alice/tao", "results")]
    assert located.places[0].file() == ("/workspace/results/status.json", "results/status.json")
    assert located.places[0].file("train") == ("/workspace/results/train/status.json", "results/train/status.json")


def test_the_innermost_mount_is_the_one_the_container_sees() -> None:
    located = locate(job(["-r", "/workspace/results/run1"], [("/data", "/workspace"), ("/fast/results", "/workspace/results")]), None)
    assert located is not None and located.places == [Place("/workspace/results/run1", "/fast/results", "run1")]


def test_a_results_dir_outside_every_mount_says_why_it_cannot_be_followed() -> None:
    located = locate(job(["-r", "/results"], [("/data", "/workspace")]), None)
    assert located is not None and located.places == []
    assert located.unavailable == "the results dir /results is outside every mount: the status file stays inside the container"


def test_a_job_without_a_results_dir_or_status_file_has_nothing_to_follow() -> None:
    assert locate(job(["-e", "/specs/x.txt"], [("/data", "/workspace")]), None) is None


def test_cp_r_in_a_run_command_is_no_results_dir() -> None:
    assert locate(job(["cp", "-r", "/workspace/a", "/workspace/b"], [("/data", "/workspace")], subtask="run"), None) is None


def test_the_status_file_named_is_followed_exactly() -> None:
    located = locate(job(["-r", "/workspace/r"], [("/data", "/workspace")], status_file="/workspace/logs/status.json"), None)
    assert located is not None and located.places == [Place("/workspace/logs/status.json", "/data", "logs/status.json", exact=True)]
    assert located.places[0].file() == ("/workspace/logs/status.json", "logs/status.json")


def test_the_results_dir_of_a_yaml_spec_is_read_through_the_mounts(tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "train.yaml").write_text(
        "encryption_key: x\nresults_dir: /workspace/results/exp1  # where\ntrain:\n  num_epochs: 80\n"
    )
    located = locate(job(["-e", "/workspace/specs/train.yaml"], [(str(tmp_path), "/workspace")]), None)
    assert located is not None and located.places == [Place("/workspace/results/exp1", str(tmp_path), "results/exp1")]


def test_a_spec_reached_through_a_link_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "outside.yaml").write_text("results_dir: /workspace/results\n")
    (tmp_path / "mount").mkdir()
    (tmp_path / "mount" / "train.yaml").symlink_to(tmp_path / "outside.yaml")
    assert locate(job(["-e", "/workspace/train.yaml"], [(str(tmp_path / "mount"), "/workspace")]), None) is None


def test_another_users_private_spec_is_not_read_for_a_users_job(tmp_path: Path) -> None:
    spec = tmp_path / "train.yaml"
    spec.write_text("results_dir: /workspace/results\n")
    os.chown(spec, 4321, 4321)
    spec.chmod(0o600)
    assert locate(job(["-e", "/workspace/train.yaml"], [(str(tmp_path), "/workspace")]), owner=1001) is None
    spec.chmod(0o644)  # a team's shared spec
    assert locate(job(["-e", "/workspace/train.yaml"], [(str(tmp_path), "/workspace")]), owner=1001) is not None


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("results_dir: /r\n", "/r"),
        ('results_dir: "/r/x"\n', "/r/x"),
        ("results_dir: '/r'   # comment\n", "/r"),
        ("results_dir: ${oc.env:RESULTS}\n", None),
        ("results_dir: relative/dir\n", None),
        ("train:\n  results_dir: /nested\n", None),
        ("results_dir_extra: /r\n", None),
    ],
)
def test_a_specs_results_dir_is_its_top_level_absolute_one(text: str, found: str | None) -> None:
    assert spec_results_dir(text) == found


def test_on_a_cluster_a_mount_the_nodes_do_not_share_says_so(tmp_path: Path) -> None:
    shared = Path(tempfile.mkdtemp(dir="/dev/shm"))  # another filesystem than the temp dir's
    try:
        mountinfo = tmp_path / "mountinfo"
        mountinfo.write_text(
            "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
            f"40 22 0:50 / {tmp_path}/nfs rw,relatime shared:5 - nfs4 server:/export rw\n"
        )
        (tmp_path / "nfs").mkdir()
        (tmp_path / "local").mkdir()
        visible = SharedFilesystem(str(shared), mountinfo=str(mountinfo))
        assert visible(str(shared)) is None  # the shared dir's own filesystem
        assert visible(str(tmp_path / "nfs")) is None  # a network filesystem
        assert visible(str(tmp_path / "local")) == (
            f"{tmp_path}/local is on a filesystem of the daemon's host (ext4) that the nodes do not share, as they share {shared}: "
            "the status file the task writes on its node is not seen here"
        )
        located = locate(job(["-r", "/workspace/r"], [(str(tmp_path / "local"), "/workspace")]), None, visible)
        assert located is not None and located.places == [] and "do not share" in (located.unavailable or "")
    finally:
        shutil.rmtree(shared)

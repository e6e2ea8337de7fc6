"""Staging bind mounts pin the directory that was checked (tao_server.access.mount_pins), on the real kernel."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tao_server.access.mount_pins import MountPins
from tao_server.backends.docker.docker_backend import engine_pid
from tao_server.errors import LaunchFailure

pytestmark = [pytest.mark.integration, pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")]


def _mounted_under(path: Path) -> list[str]:
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines() if line.split()[4].startswith(str(path))]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "f").write_text("mine\n")
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "f").write_text("secret\n")
    return tmp_path


def _swap_for_link(path: Path, target: Path) -> None:
    path.rename(path.with_name(path.name + "-away"))
    path.symlink_to(target)


def test_a_pinned_source_keeps_its_directory_when_the_path_is_swapped(tree: Path) -> None:
    pins = MountPins(tree / "stage", engine_pid("unix:///var/run/docker.sock"))
    [mount] = pins.prepare("job1", [{"source": str(tree / "mine"), "destination": "/data", "read_only": False}], confined=True)
    assert mount["source"] == str(tree / "stage" / "job1" / "0")
    _swap_for_link(tree / "mine", tree / "secret")
    assert Path(mount["source"], "f").read_text() == "mine\n"  # what the engine would mount
    pins.release("job1")
    assert _mounted_under(tree / "stage") == []
    assert not (tree / "stage" / "job1").exists()


def test_a_source_swapped_before_pinning_is_refused_and_nothing_is_left(tree: Path) -> None:
    pins = MountPins(tree / "stage", engine_pid("unix:///var/run/docker.sock"))
    _swap_for_link(tree / "mine", tree / "secret")
    with pytest.raises(LaunchFailure, match=f"now leads to '{tree / 'secret'}'; it changed after the job was submitted"):
        pins.prepare("job1", [{"source": str(tree / "mine"), "destination": "/data", "read_only": False}], confined=True)
    assert _mounted_under(tree / "stage") == []
    assert not (tree / "stage" / "job1").exists()


def test_admin_jobs_are_checked_not_pinned_and_a_restart_sweeps_leftovers(tree: Path) -> None:
    pins = MountPins(tree / "stage", engine_pid("unix:///var/run/docker.sock"))
    mounts = [{"source": str(tree / "mine"), "destination": "/data", "read_only": True}]
    assert pins.prepare("admin", mounts, confined=False) == mounts
    pins.prepare("left", mounts, confined=True)
    assert len(_mounted_under(tree / "stage")) == 1
    MountPins(tree / "stage", engine_pid("unix:///var/run/docker.sock")).sweep()  # what a restarted daemon does first
    assert _mounted_under(tree / "stage") == []


def test_a_pin_the_engine_cannot_see_fails_the_job_and_keeps_the_data(tree: Path) -> None:
    pins = MountPins(tree / "stage", os.getpid())
    pins.engine_root = f"/proc/{os.getpid()}/root/nonexistent"  # an engine in a mount namespace of its own
    with pytest.raises(LaunchFailure, match="the Docker engine cannot see the daemon's staging mounts"):
        pins.prepare("job1", [{"source": str(tree / "mine"), "destination": "/data", "read_only": False}], confined=True)
    assert _mounted_under(tree / "stage") == []
    assert (tree / "mine" / "f").read_text() == "mine\n"  # detached, never deleted through the mount


def test_engine_pid_is_the_engines(tree: Path) -> None:
    pid = engine_pid("unix:///var/run/docker.sock")
    assert pid is not None
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "dockerd"
    assert engine_pid("tcp://127.0.0.1:2375") is None  # an engine over TCP

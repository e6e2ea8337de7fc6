"""Paths in a job's arguments against its mounts (tao_server.jobs.path_args): refused, warned of, or passed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tao_server.errors import HostPathArgument
from tao_server.jobs.launch_options import LaunchConfig, validate
from tao_server.jobs.path_args import check

SOURCE = "~/.tao_mounts.json"


@pytest.fixture
def config(tmp_path: Path) -> LaunchConfig:
    """/…/alice/tao at /workspace/tao-experiments, and a read-only /…/data at /data."""
    (tmp_path / "alice" / "tao").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    raw = {
        "Mounts": [
            {"source": str(tmp_path / "alice" / "tao"), "destination": "/workspace/tao-experiments"},
            {"source": str(tmp_path / "data"), "destination": "/data", "read_only": True},
        ]
    }
    return validate(raw, SOURCE)


def refusal(args: list[str], config: LaunchConfig, subtask: str | None = "train") -> HostPathArgument:
    with pytest.raises(HostPathArgument) as refused:
        check(args, config, subtask, SOURCE)
    return refused.value


def test_a_host_path_under_a_source_is_refused_with_the_container_path(config: LaunchConfig, tmp_path: Path) -> None:
    spec = f"{tmp_path}/alice/tao/specs/train.txt"
    error = refusal(["-e", spec, "-r", "/workspace/tao-experiments/results"], config)
    assert f"{spec} is /workspace/tao-experiments/specs/train.txt inside the container" in error.message
    assert error.message.startswith(f"-e {spec}: a host path, which the task cannot see;")
    assert f"(Mounts[0] in {SOURCE}): give /workspace/tao-experiments/specs/train.txt instead" in error.message
    assert (error.field, error.code, error.http_status) == ("args[1]", "host_path_argument", 422)


@pytest.mark.parametrize(
    ("arg", "given"),
    [
        ("--experiment_spec={tmp}/alice/tao/specs/a.yaml", "--experiment_spec=/workspace/tao-experiments/specs/a.yaml"),
        ("results_dir={tmp}/alice/tao/out", "results_dir=/workspace/tao-experiments/out"),  # Hydra's form
        ("{tmp}/alice/tao", "/workspace/tao-experiments"),  # the source itself
        ("{tmp}/alice/tao/specs/../specs//b.txt", "/workspace/tao-experiments/specs/b.txt"),  # read as the kernel would
        ("{tmp}/data/kitti", "/data/kitti"),
    ],
)
def test_every_form_of_a_host_path_gets_the_form_to_give_instead(config: LaunchConfig, tmp_path: Path, arg: str, given: str) -> None:
    error = refusal(["--gpus", "1", arg.format(tmp=tmp_path)], config)
    assert error.message.endswith(f"give {given} instead") and error.field == "args[2]"


def test_the_innermost_source_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    config = validate(
        {
            "Mounts": [
                {"source": str(tmp_path / "a"), "destination": "/outer"},
                {"source": str(tmp_path / "a" / "b"), "destination": "/inner"},
            ]
        },
        SOURCE,
    )
    assert refusal([f"{tmp_path}/a/b/c.txt"], config).message.endswith("give /inner/c.txt instead")


def test_a_source_reached_through_a_symlink_is_recognised_both_ways(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    config = validate({"Mounts": [{"source": str(tmp_path / "link"), "destination": "/w"}]}, SOURCE)
    for spelled in ("link", "real"):
        assert refusal([f"{tmp_path}/{spelled}/spec.txt"], config).message.endswith("give /w/spec.txt instead")


@pytest.mark.parametrize(
    "args",
    [
        ["-e", "/workspace/tao-experiments/specs/train.txt", "-r", "/workspace/tao-experiments/results"],  # under a destination
        ["-e", "/workspace/specs/default_spec.txt"],  # the image's own path: no mount's source holds it
        ["-e", "specs/train.txt", "-k", "nvidia_tlt"],  # relative, and not a path at all
        ["--data=/data/kitti", "num_gpus=2"],
    ],
)
def test_container_paths_and_the_images_own_pass_untouched(config: LaunchConfig, args: list[str]) -> None:
    assert check(args, config, "train", SOURCE) == []


def test_a_source_mounted_at_the_same_path_is_a_destination_too(tmp_path: Path) -> None:
    (tmp_path / "same").mkdir()
    config = validate({"Mounts": [{"source": str(tmp_path / "same"), "destination": str(tmp_path / "same")}]}, SOURCE)
    assert check(["-e", f"{tmp_path}/same/spec.txt", "-r", f"{tmp_path}/same/results"], config, "train", SOURCE) == []


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["-e", "/workspace/tao-experiments/s.txt", "-r", "/results"], "-r /results"),
        (["--results_dir", "/results"], "--results_dir /results"),
        (["--results_dir=/results"], "--results_dir=/results"),
        (["results_dir=/results"], "results_dir=/results"),
        (["train.results_dir=/results"], "train.results_dir=/results"),
        (["+results_dir=/results"], "+results_dir=/results"),
    ],
)
def test_a_results_dir_outside_every_mount_is_warned_of(config: LaunchConfig, args: list[str], named: str) -> None:
    (warning,) = check(args, config, "train", SOURCE)
    assert warning.startswith(f"{named}: the results dir is outside every mount, so its files are lost with the container;")
    assert "(/workspace/tao-experiments, /data)" in warning and f"(Mounts in {SOURCE})" in warning


def test_without_mounts_a_results_dir_is_warned_of_and_no_path_refused() -> None:
    (warning,) = check(["-e", "/home/alice/spec.txt", "-r", "/workspace/results"], validate(None, None), "train", None)
    assert warning.endswith("the job mounts nothing: mount a host dir at /workspace/results (Mounts in the launcher config)")


def test_in_a_run_only_the_long_results_options_count(config: LaunchConfig) -> None:
    assert check(["cp", "-r", "/tmp/a", "/tmp/b"], config, "run", SOURCE) == []  # cp's -r is no results dir
    assert len(check(["python", "train.py", "--results_dir", "/tmp/out"], config, "run", SOURCE)) == 1


def test_a_relative_results_dir_is_left_alone(config: LaunchConfig) -> None:
    assert check(["-r", "results"], config, "train", SOURCE) == []

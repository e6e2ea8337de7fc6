"""Launcher options before the task, and group/task splitting (tao_client.cli)."""

from __future__ import annotations

import pytest

from tao_client.cli._common import LauncherOptions, UsageError
from tao_client.cli.main import parse_launcher_options
from tao_client.cli.task import split_words

TASKS = {
    "groups": ["model", "dataset"],
    "tasks": [
        {"group": "model", "name": "dino", "subtasks": [], "image": "x"},
        {"group": "model", "name": "classification_pyt", "subtasks": [], "image": "x"},
        {"group": "dataset", "name": "augmentation", "subtasks": [], "image": "y"},
    ],
}
NO_GROUPS = {"groups": [], "tasks": [{"group": None, "name": "ssd", "subtasks": ["train"], "image": "x"}]}


# --- parse_launcher_options ----------------------------------------------------------------------


def test_no_options():
    assert parse_launcher_options(["ssd", "train"]) == (LauncherOptions(), ["ssd", "train"])


def test_empty_argv():
    assert parse_launcher_options([]) == (LauncherOptions(), [])


@pytest.mark.parametrize(
    ("argv", "attribute", "value"),
    [
        (["--gpus", "2", "ssd"], "gpus", "2"),
        (["--gpus=2", "ssd"], "gpus", "2"),
        (["-d", "ssd"], "detach", True),
        (["--detach", "ssd"], "detach", True),
        (["--gpu-index", "0,2", "ssd"], "gpu_indices", ["0", "2"]),
        (["--gpu-index= 1 , 3 ", "ssd"], "gpu_indices", ["1", "3"]),
        (["--id", "X", "ssd"], "job_id", "X"),
        (["--mounts", "F", "ssd"], "mounts", "F"),
        (["--host=http://h:1", "ssd"], "host", "http://h:1"),
    ],
)
def test_option_sets_its_field(argv, attribute, value):
    options, words = parse_launcher_options(argv)
    assert getattr(options, attribute) == value
    assert words == ["ssd"]


def test_several_options_together():
    options, words = parse_launcher_options(["-d", "--gpus", "all", "--id=job1", "ssd", "train"])
    assert options == LauncherOptions(detach=True, gpus="all", job_id="job1")
    assert words == ["ssd", "train"]


def test_options_stop_at_the_first_word():
    argv = ["ssd", "train", "--help", "-d", "--gpus", "3", "--unknown"]
    options, words = parse_launcher_options(argv)
    assert options == LauncherOptions()
    assert words == argv


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_is_left_as_a_word(flag):
    assert parse_launcher_options(["-d", flag, "--gpus"]) == (LauncherOptions(detach=True), [flag, "--gpus"])


@pytest.mark.parametrize("argv", [["--version"], ["-d", "--version", "ssd"], ["--gpus", "2", "--version"]])
def test_version_returns_no_words(argv):
    assert parse_launcher_options(argv)[1] is None


@pytest.mark.parametrize("argv", [["--foo", "ssd"], ["-x"], ["-d=1", "ssd"], ["--", "ssd"]])
def test_unknown_option(argv):
    with pytest.raises(UsageError, match="unknown launcher option"):
        parse_launcher_options(argv)


@pytest.mark.parametrize("option", ["--gpus", "--gpu-index", "--id", "--mounts", "--host"])
def test_option_missing_its_value(option):
    with pytest.raises(UsageError, match=f"^{option} needs a value$"):
        parse_launcher_options(["-d", option])


@pytest.mark.parametrize("value", ["a", "0,b", ",", ""])
def test_bad_gpu_index(value):
    with pytest.raises(UsageError, match="--gpu-index"):
        parse_launcher_options(["--gpu-index", value, "ssd"])


# --- split_words ---------------------------------------------------------------------------------


def test_split_with_group():
    assert split_words(TASKS, ["model", "dino", "train", "-e", "spec.yaml"]) == ("model", "dino", ["train", "-e", "spec.yaml"])


def test_split_without_group():
    assert split_words(TASKS, ["dino", "train"]) == (None, "dino", ["train"])


def test_split_task_only():
    assert split_words(NO_GROUPS, ["ssd"]) == (None, "ssd", [])


def test_group_name_is_a_task_when_the_manifest_has_no_groups():
    assert split_words(NO_GROUPS, ["model", "dino"]) == (None, "model", ["dino"])


@pytest.mark.parametrize("words", [["model"], ["model", "--help"], ["model", "-h"]])
def test_group_without_task_lists_the_groups_tasks(words):
    with pytest.raises(UsageError) as info:
        split_words(TASKS, words)
    message = str(info.value)
    assert "tao model <task>" in message
    assert "classification_pyt, dino" in message
    assert "augmentation" not in message

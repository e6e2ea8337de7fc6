"""Launcher options before the task, and group/task splitting (tao_client.cli)."""

from __future__ import annotations

import os

import pytest

from tao_client.cli._common import LauncherOptions, UsageError, not_utf8
from tao_client.cli.main import parse_launcher_options, undecodable_argument
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
        (["--status-file", "/workspace/r/status.json", "ssd"], "status_file", "/workspace/r/status.json"),
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


def test_notify_is_repeatable_and_kept_in_order():
    options, words = parse_launcher_options(["--notify", "https://a.example/", "-d", "--notify=http://b.example/x", "ssd"])
    assert options.notify == ["https://a.example/", "http://b.example/x"]
    assert options == LauncherOptions(detach=True, notify=["https://a.example/", "http://b.example/x"])
    assert words == ["ssd"]


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


@pytest.mark.parametrize("option", ["--gpus", "--gpu-index", "--id", "--mounts", "--host", "--notify"])
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


# --- arguments that are not UTF-8 ----------------------------------------------------------------

CAFE_LATIN1 = os.fsdecode(b"caf\xe9.jpg")  # how Python hands over argv bytes that are not UTF-8


@pytest.mark.parametrize(
    ("text", "shown"),
    [("plain", None), ("café ☃", None), (CAFE_LATIN1, "caf\\xe9.jpg"), (os.fsdecode(b"\xff\xfe ok \xc3\xa9"), "\\xff\\xfe ok é")],
)
def test_not_utf8_shows_the_bytes_that_are_not(text, shown):
    assert not_utf8(text) == shown


def _problem(argv: list[str]) -> str | None:
    options, words = parse_launcher_options(argv)
    assert words is not None
    return undecodable_argument(argv, words, options)


def test_a_word_that_is_not_utf8_is_named_by_its_place_on_the_command_line():
    assert _problem(["-d", "detectnet_v2", "run", "echo", CAFE_LATIN1]) == (
        "argument 5 'caf\\xe9.jpg' is not valid UTF-8, and tao sends arguments as UTF-8 text; give it in UTF-8 (a file name: rename the file)"
    )


def test_launcher_options_sent_to_the_daemon_are_checked_and_local_paths_are_not():
    assert (_problem(["--id", CAFE_LATIN1, "ssd", "train"]) or "").startswith("--id 'caf\\xe9.jpg' is not valid UTF-8")
    assert (_problem([f"--gpus={CAFE_LATIN1}", "ssd", "train"]) or "").startswith("--gpus 'caf\\xe9.jpg' is not valid UTF-8")
    assert _problem(["--mounts", CAFE_LATIN1, "--host", f"unix:///tmp/{CAFE_LATIN1}", "ssd", "train", "naïve"]) is None

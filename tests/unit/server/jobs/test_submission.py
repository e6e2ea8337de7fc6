"""The container command for a job and job ids (tao_server.jobs)."""

from __future__ import annotations

import pytest

from tao_server.errors import InvalidRequest
from tao_server.images.manifest import TaskImage, TaskSpec
from tao_server.jobs.submission import new_job_id, task_command

SPEC = TaskSpec(group=None, name="detectnet_v2", image=TaskImage("nvcr.io", "nvidia/tao/tao-toolkit-tf", "v3"))


def test_command_without_subtask():
    assert task_command(SPEC, None, ["--help"]) == ["detectnet_v2", "--help"]


def test_command_with_subtask_and_args():
    args = ["-e", "/specs/train.txt", "-k", "key with spaces"]
    assert task_command(SPEC, "train", args) == ["detectnet_v2", "train", *args]


def test_command_does_not_alias_the_args_list():
    args = ["echo", "hi"]
    command = task_command(SPEC, "run", args)
    command.append("extra")
    assert args == ["echo", "hi"]


def test_run_passes_args_verbatim():
    assert task_command(SPEC, "run", ["bash", "-c", "ls && echo $HOME"]) == ["bash", "-c", "ls && echo $HOME"]


def test_run_without_a_command_is_refused():
    with pytest.raises(InvalidRequest) as info:
        task_command(SPEC, "run", [])
    assert info.value.field == "args"


def test_job_id_format():
    job_id = new_job_id()
    assert len(job_id) == 8
    assert set(job_id) <= set("abcdefghijkmnpqrstuvwxyz23456789")


def test_job_ids_avoid_ambiguous_characters():
    seen = "".join(new_job_id() for _ in range(1000))
    assert not set(seen) & set("01lo")


def test_job_ids_are_unique():
    assert len({new_job_id() for _ in range(1000)}) == 1000

"""How `tao list`, `tao show` and `tao logs` present jobs, and how `tao` ends when its reader goes away."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tao_client.cli import _common, commands
from tao_client.cli.jobs import command_text, duration
from tao_client.cli.show import TAIL_BYTES, binary_size, event_lines, last_lines

TAO = str(Path(sys.executable).parent / "tao")  # the venv's, beside this interpreter


def job(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"subtask": "train", "args": [], "started_at": None, "finished_at": None}
    return {**base, **fields}


def test_the_command_is_the_subtask_and_arguments_as_a_shell_takes_them_back() -> None:
    assert command_text(job(args=["-e", "/workspace/specs/a b.txt", "-k", "it's"])) == "train -e '/workspace/specs/a b.txt' -k 'it'\"'\"'s'"
    assert command_text(job(subtask=None, args=["--help"])) == "--help"


@pytest.mark.parametrize(
    ("started", "finished", "shown"),
    [
        (None, None, ""),
        ("2026-12-06T10:00:00Z", "2026-12-06T10:00:07.9Z", "0:07"),
        ("2026-12-06T10:00:00Z", "2026-12-06T11:02:03Z", "1:02:03"),
        ("2026-12-06T10:00:00Z", "2026-12-08T10:00:05Z", "2-00:00:05"),
    ],
)
def test_duration_is_from_start_to_end(started: str | None, finished: str | None, shown: str) -> None:
    assert duration(job(started_at=started, finished_at=finished)) == shown


def test_a_running_jobs_duration_runs_to_now() -> None:
    now = datetime(2026, 12, 6, 10, 5, 30, tzinfo=UTC)
    assert duration(job(started_at="2026-12-06T10:00:00Z"), now=now) == "5:30"


def test_a_table_cut_to_the_terminal_cuts_only_its_last_column(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [("ID", "STATUS", "COMMAND"), ("a1", "running", "train -e /workspace/specs/train.txt -r /workspace/results")]
    _common.print_table(rows, last_width=40)
    header, line = capsys.readouterr().out.splitlines()
    assert header == "ID  STATUS   COMMAND"
    assert len(line) == 40 and line.startswith("a1  running  train -e /work") and line.endswith(("…", "..."))


def test_a_table_keeps_a_useful_last_column_on_a_narrow_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    _common.print_table([("ID", "COMMAND"), ("a1", "x" * 50)], last_width=10)
    assert len(capsys.readouterr().out.splitlines()[1]) == len("a1  ") + _common.MIN_LAST


def test_a_table_left_whole_is_not_cut(capsys: pytest.CaptureFixture[str]) -> None:
    _common.print_table([("ID", "COMMAND"), ("a1", "x" * 500)])
    assert capsys.readouterr().out.splitlines()[1] == "a1  " + "x" * 500


@pytest.mark.parametrize(
    ("word", "said"),
    [
        ("lst", "unknown command or task 'lst'; did you mean `tao list`?"),
        ("detectnet_v3", "unknown task 'detectnet_v3'; did you mean detectnet_v2?"),
        ("stp", "unknown command or task 'stp'; did you mean `tao stop`?"),
        ("xyzzy", "unknown command or task 'xyzzy'; `tao --help` lists the commands and the daemon's tasks"),
        ("clasification", "unknown task 'clasification'; did you mean classification?"),
        ("modle", "unknown task 'modle'; did you mean model?"),  # a group of the manifest's
    ],
)
def test_an_unknown_word_names_the_verbs_and_tasks_it_is_closest_to(word: str, said: str) -> None:
    assert commands.unknown_word(word, ["classification", "detectnet_v2", "yolo_v4"], ["model"]) == said


def test_events_are_a_line_each_and_a_pull_one_line_per_image() -> None:
    pull: list[dict[str, Any]] = [
        {"layer": "1", "status": "Pulling from tao/toolkit"},
        {"layer": "a1", "status": "Downloading", "current": 5, "total": 10},
        {"layer": "b2", "status": "Pull complete"},
        {"layer": "a1", "status": "Pull complete"},
        {"layer": "", "status": "pulled"},
    ]
    events = [{"seq": n, "time": 36000.0 + n, "type": "pull", "data": {"image": "tao/toolkit:1", **data}} for n, data in enumerate(pull)]
    events += [
        {"seq": 9, "time": 36010.0, "type": "gpus", "data": {"devices": ["0", "2"]}},
        {"seq": 10, "time": 36011.0, "type": "image", "data": {"reference": "tao/toolkit:1", "id": "sha256:ab", "digests": []}},
        {"seq": 11, "time": 36070.0, "type": "time_limit", "data": {"limit": 60, "status": "stopping"}},
        {
            "seq": 12,
            "time": 36080.0,
            "type": "gpu_idle",
            "data": {"gpu": "2", "idle": True, "message": "GPU 2 idle for 10 min (under 5% utilisation)"},
        },
    ]
    assert event_lines(events) == [
        "10:00:00  pull tao/toolkit:1: 2 layers, last: pulled",
        "10:00:10  gpus 0,2",
        "10:00:11  image tao/toolkit:1 sha256:ab",
        "10:01:10  time_limit limit=60 status=stopping",
        "10:01:20  gpu_idle GPU 2 idle for 10 min (under 5% utilisation)",
    ]


def test_the_last_lines_drop_a_line_the_tail_began_inside() -> None:
    assert last_lines(b"one\ntwo\nthree\n", 2) == "two\nthree\n"
    assert last_lines(b"", 20) == ""
    cut = b"x" * 10 + b"\n" + b"y" * (TAIL_BYTES - 11)
    assert last_lines(cut, 20) == "y" * (TAIL_BYTES - 11) + "\n"


@pytest.mark.parametrize(
    ("count", "shown"), [(64 * 1024**2, "64 MiB"), (16 * 1024**3, "16 GiB"), (1536 * 1024**2, "1.5 GiB"), (512, "512 B")]
)
def test_sizes_are_shown_in_the_units_docker_run_reads(count: int, shown: str) -> None:
    assert binary_size(count) == shown


@pytest.mark.parametrize("args", [["--version"], ["--help"]])
def test_a_closed_stdout_ends_tao_quietly_with_sigpipes_status(args: list[str]) -> None:
    """`tao list --all | head -3`: the reader goes, `tao` ends as a tool killed by SIGPIPE would, with no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # no reader: every write fails with EPIPE
    env = {**os.environ, "TAO_HOST": "unix:///nonexistent/tao.sock", "TAO_NO_AUTOSTART": "1"}
    try:
        ended = subprocess.run([TAO, *args], stdout=write_end, stderr=subprocess.PIPE, env=env, timeout=60)
    finally:
        os.close(write_end)
    assert (ended.returncode, ended.stderr) == (141, b"")

"""How a Slurm job's end reads (backends/slurm/ends.py): the task's own code when it ended by itself,
Slurm's end state when Slurm ended it, and never a success for a job that did not end by itself."""

from __future__ import annotations

import pytest

from tao_server.backends import Interruption, RunExit
from tao_server.backends.slurm.ends import STOPPED_BY_SLURM, slurm_end
from tao_server.backends.slurm.state import JobState


def ended(state: str, exit_code: int | None = 0, nodes: str | None = "gpu-node01", reason: str | None = None) -> JobState:
    return JobState("12", state, reason=reason, exit_code=exit_code, nodes=nodes, batch_host=nodes)


@pytest.mark.parametrize("state", ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"])
def test_a_task_that_ended_by_itself_keeps_its_code_whatever_slurm_says(state: str) -> None:
    # A cancel that came as the task was done, say: the script recorded the task's end, and no signal.
    assert slurm_end("12", 0, False, ended(state)) == RunExit(0)
    assert slurm_end("12", 3, False, None) == RunExit(3)


def test_a_pending_job_cancelled_with_scancel_is_cancelled_never_a_success() -> None:
    # What Slurm reports for it: CANCELLED, ExitCode=0:0, no node, and the stale pending reason.
    end = slurm_end("12", None, False, ended("CANCELLED", 0, nodes=None, reason="Resources"))
    assert end == RunExit(
        None,
        interrupted=Interruption(
            "cancelled", "cancelled in Slurm, outside the launcher (scancel by its owner or an admin) (Slurm job 12 ended CANCELLED)"
        ),
    )


def test_a_running_job_cancelled_in_slurm_is_cancelled_with_the_tasks_code() -> None:
    end = slurm_end("12", 143, True, ended("CANCELLED", 0))  # the trap stopped the container, the script recorded 143
    assert (end.exit_code, end.interrupted and end.interrupted.status, end.cut) == (143, "cancelled", False)


def test_the_launchers_own_cancel_keeps_the_tasks_code() -> None:
    # scancel --batch --signal=TERM signals the script without ending the job: FAILED with the task's code.
    assert slurm_end("12", 143, True, ended("FAILED", 143)) == RunExit(143)


@pytest.mark.parametrize(
    ("state", "status", "words"),
    [
        ("TIMEOUT", "failed", "stopped by Slurm at its time limit"),
        ("PREEMPTED", "cancelled", "preempted"),
        ("DEADLINE", "failed", "deadline"),
        ("OUT_OF_MEMORY", "failed", "out of memory"),
        ("BOOT_FAIL", "error", "failed to boot"),
    ],
)
def test_each_end_slurm_makes_reads_as_its_status_with_slurms_word(state: str, status: str, words: str) -> None:
    end = slurm_end("12", None, False, ended(state, 15 + 128 if status != "error" else 0))
    assert end.interrupted is not None and end.interrupted.status == status
    assert words in end.interrupted.reason and f"Slurm job 12 ended {state}" in end.interrupted.reason
    assert end.exit_code == (125 if status == "error" else 143)


def test_every_state_in_which_slurm_ends_a_job_is_no_success() -> None:
    for state in STOPPED_BY_SLURM:
        for recorded, signalled in ((None, False), (0, True)):
            end = slurm_end("12", recorded, signalled, ended(state, 0))
            assert end.interrupted is not None and end.interrupted.status in ("cancelled", "failed", "error"), (state, end)


def test_a_node_failure_is_an_error_naming_the_node_and_a_cut_when_the_job_ran() -> None:
    end = slurm_end("12", None, False, ended("NODE_FAIL", 0, reason="NodeDown"))
    assert end == RunExit(
        125,
        interrupted=Interruption("error", "its node failed (Slurm job 12 ended NODE_FAIL on node gpu-node01, reason NodeDown)"),
        cut=True,
    )
    # Its script had recorded the task's end before the failure: nothing runs on.
    assert not slurm_end("12", 0, True, ended("NODE_FAIL", 0)).cut


def test_a_job_slurm_forgot_without_a_record_is_a_launcher_failure() -> None:
    end = slurm_end("12", None, False, None)
    assert (end.exit_code, end.failure) == (125, "Slurm job 12 ended without an exit code (Slurm no longer knows it)")
    assert slurm_end("12", 143, True, None) == RunExit(143)  # forgotten, but the script recorded its end


def test_a_script_killed_before_it_recorded_anything_is_never_a_success() -> None:
    assert slurm_end("12", None, False, ended("COMPLETED", 0)) == RunExit(0)  # the script's own code is the task's
    killed = slurm_end("12", None, False, ended("FAILED", 137))
    assert killed.exit_code == 137 and killed.interrupted is not None and killed.interrupted.status == "failed"
    silent = slurm_end("12", None, False, ended("FAILED", 0))
    assert (silent.exit_code, silent.interrupted) == (125, None) and silent.failure is not None

"""Reading Slurm's answers about jobs (backends/slurm/state.py), as Slurm 22.05 prints them, and
the poller's decisions: what it asks each tick, when it backs off, and when a job is lost."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tao_server.backends.slurm.state import (
    Answer,
    JobState,
    StatePoller,
    exit_status,
    index_list,
    parse_sacct,
    parse_scontrol,
    parse_squeue,
)
from tao_server.errors import BackendUnavailable

SQUEUE = """\
101|RUNNING|tao-0123abcd-job1|gpu-node01|2024-03-05T10:12:44|None
102|PENDING|tao-0123abcd-alice.job-2||N/A|Resources
103|PENDING|tao-0123abcd-job3||N/A|ReqNodeNotAvail, UnavailableNodes:gpu-node[02-03]
104|COMPLETING|tao-0123abcd-job4|gpu-node01|2024-03-05T09:00:01|None
105|PENDING|tao-0123abcd-job5||N/A|held by admin | see ticket
#4711, back Monday
"""

SCONTROL_RUNNING = """\
JobId=101 JobName=tao-0123abcd-job1
   UserId=alice(1000) GroupId=alice(1000) MCS_label=N/A
   Priority=4294901757 Nice=0 Account=ml QOS=normal
   JobState=RUNNING Reason=None Dependency=(null)
   Requeue=0 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0
   DerivedExitCode=0:0
   RunTime=00:03:12 TimeLimit=1-00:00:00 TimeMin=N/A
   SubmitTime=2024-03-05T10:12:43 EligibleTime=2024-03-05T10:12:43
   AccrueTime=2024-03-05T10:12:43
   StartTime=2024-03-05T10:12:44 EndTime=2024-03-06T10:12:44 Deadline=N/A
   SuspendTime=None SecsPreSuspend=0 LastSchedEval=2024-03-05T10:12:44 Scheduler=Main
   Partition=gpu AllocNode:Sid=login01:4128
   ReqNodeList=(null) ExcNodeList=(null)
   NodeList=gpu-node01
   BatchHost=gpu-node01
   NumNodes=1 NumCPUs=2 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:*
   TRES=cpu=2,mem=1G,node=1,billing=2,gres/gpu=2
   Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=*
   JOB_GRES=gpu:a100:2
     Nodes=gpu-node01 CPU_IDs=4-5 Mem=1024 GRES=gpu:a100:2(IDX:1,3)
   MinCPUsNode=1 MinMemoryNode=1G MinTmpDiskNode=0
   Features=(null) DelayBoot=00:00:00
   OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null)
   Command=/shared/tao runs/tao-0123abcd-job1.sbatch
   WorkDir=/shared/tao runs
   Comment=tao-launcher:daemon=0123abcd4567ef890123abcd4567ef89:job=job1
   StdErr=/shared/tao runs/tao-0123abcd-job1.out
   StdIn=/dev/null
   StdOut=/shared/tao runs/tao-0123abcd-job1.out
   Power=
   TresPerNode=gres:gpu:2
"""


def scontrol_ended(state: str, reason: str, exit_code: str) -> str:
    return (
        SCONTROL_RUNNING.replace("JobState=RUNNING Reason=None", f"JobState={state} Reason={reason}")
        .replace("ExitCode=0:0\n", f"ExitCode={exit_code}\n", 1)
        .replace("RunTime=00:03:12", "RunTime=00:41:09")
    )


SACCT = """\
101|COMPLETED|0:0|2024-03-05T10:12:44|gpu-node01|tao-0123abcd-job1
101.batch|COMPLETED|0:0|2024-03-05T10:12:44|gpu-node01|batch
101.extern|COMPLETED|0:0|2024-03-05T10:12:44|gpu-node01|extern
102|CANCELLED by 1000|0:15|2024-03-05T10:20:00|gpu-node02|tao-0123abcd-alice.job-2
103|FAILED|2:0|2024-03-05T10:25:00|gpu-node02|tao-0123abcd-job3
104|CANCELLED by 1000|0:0|None|None assigned|tao-0123abcd-job4
"""
INVALID = Answer(1, "", "slurm_load_jobs error: Invalid job id specified\n")
UNREACHABLE = Answer(1, "", "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n")


def test_squeue_lines_are_read_by_job_id() -> None:
    states = parse_squeue(SQUEUE)
    assert states["101"] == JobState("101", "RUNNING", None, None, "gpu-node01", "2024-03-05T10:12:44", "tao-0123abcd-job1")
    assert states["102"] == JobState("102", "PENDING", "Resources", None, None, None, "tao-0123abcd-alice.job-2")
    assert states["103"].reason == "ReqNodeNotAvail, UnavailableNodes:gpu-node[02-03]"
    assert states["104"].state == "COMPLETING" and not states["104"].ended


def test_a_reason_may_hold_the_delimiter_and_a_line_break() -> None:
    assert parse_squeue(SQUEUE)["105"].reason == "held by admin | see ticket\n#4711, back Monday"


def test_a_running_job_in_scontrol_has_its_gpus_and_no_end() -> None:
    state = parse_scontrol(SCONTROL_RUNNING)
    assert state is not None
    assert (state.job_id, state.state, state.reason, state.nodes, state.gpus) == ("101", "RUNNING", None, "gpu-node01", (1, 3))
    assert state.name == "tao-0123abcd-job1" and state.start_time == "2024-03-05T10:12:44" and not state.ended
    assert state.batch_host == "gpu-node01" and not state.pending  # where a sweep goes after a node failure


def test_pending_and_configuring_jobs_wait_in_slurms_queue() -> None:
    assert parse_squeue(SQUEUE)["102"].pending and not parse_squeue(SQUEUE)["104"].pending
    assert JobState("9", "CONFIGURING").pending and not JobState("9", "RUNNING").pending


@pytest.mark.parametrize(
    ("state", "reason", "exit_code", "expected"),
    [
        ("COMPLETED", "None", "0:0", 0),
        ("FAILED", "NonZeroExitCode", "2:0", 2),
        ("FAILED", "NonZeroExitCode", "143:0", 143),
        ("CANCELLED", "None", "0:15", 143),
        ("TIMEOUT", "TimeLimit", "0:9", 137),
        ("OUT_OF_MEMORY", "OutOfMemory", "0:125", 253),
    ],
)
def test_an_ended_job_in_scontrol_has_its_exit_code_as_a_shell_reports_it(state: str, reason: str, exit_code: str, expected: int) -> None:
    parsed = parse_scontrol(scontrol_ended(state, reason, exit_code))
    assert parsed is not None and parsed.ended and parsed.exit_code == expected
    assert parsed.reason == (None if reason == "None" else reason)


def test_values_with_spaces_do_not_spill_into_other_keys() -> None:
    state = parse_scontrol(SCONTROL_RUNNING.replace("JobName=tao-0123abcd-job1", "JobName=tao job one"))
    assert state is not None and state.name == "tao job one" and state.job_id == "101"


@pytest.mark.parametrize(
    ("gres", "gpus"),
    [
        ("gpu:a100:2(IDX:0-1)", (0, 1)),
        ("gpu(IDX:0,2-3)", (0, 2, 3)),
        ("gpu:2(IDX:0-1),shard:1(IDX:2)", (0, 1)),
        ("gpu:v100:1(IDX:5),gpu:a100:2(IDX:0-1)", (5, 0, 1)),
        ("gpu:0(IDX:N/A)", ()),
        ("", ()),
    ],
)
def test_gpu_indices_come_from_the_nodes_line(gres: str, gpus: tuple[int, ...]) -> None:
    text = SCONTROL_RUNNING.replace("GRES=gpu:a100:2(IDX:1,3)", f"GRES={gres}")
    state = parse_scontrol(text)
    assert state is not None and state.gpus == gpus


def test_scontrol_text_without_a_job_is_nothing() -> None:
    assert parse_scontrol("") is None
    assert parse_scontrol("No jobs in the system\n") is None


def test_sacct_lines_are_read_by_job_leaving_out_the_steps() -> None:
    states = parse_sacct(SACCT)
    assert sorted(states) == ["101", "102", "103", "104"]
    assert states["101"] == JobState("101", "COMPLETED", None, 0, "gpu-node01", "2024-03-05T10:12:44", "tao-0123abcd-job1")
    assert (states["102"].state, states["102"].exit_code) == ("CANCELLED", 143)
    assert states["103"].exit_code == 2
    assert states["104"].start_time is None and states["104"].ended


@pytest.mark.parametrize(("text", "code"), [("0:0", 0), ("1:0", 1), ("0:9", 137), ("", None), ("N/A", None)])
def test_exit_status(text: str, code: int | None) -> None:
    assert exit_status(text) == code


def test_index_lists() -> None:
    assert index_list("0-2,5,7-8") == [0, 1, 2, 5, 7, 8]
    assert index_list("N/A") == []


# --- the poller --------------------------------------------------------------------------------


class Slurm:
    """Answers the poller's commands from a script of answers per command name, and records the calls."""

    def __init__(self) -> None:
        self.answers: dict[str, list[Answer]] = {"squeue": [], "scontrol": [], "sacct": []}
        self.calls: list[list[str]] = []

    def say(self, command: str, *answers: Answer) -> None:
        self.answers[command].extend(answers)

    def __call__(self, argv: Sequence[str]) -> Answer:
        self.calls.append(list(argv))
        queue = self.answers[argv[0]]
        return queue.pop(0) if queue else Answer(0, "")

    def asked(self) -> list[str]:
        asked, self.calls = [" ".join(call[:1] + [a for a in call[1:] if a.startswith(("--jobs", "1"))]) for call in self.calls], []
        return asked


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def squeue_lines(*lines: str) -> Answer:
    return Answer(0, "".join(line + "\n" for line in lines))


RUN_101 = "101|RUNNING|tao-0123abcd-job1|gpu-node01|2024-03-05T10:12:44|None"
RUN_102 = "102|RUNNING|tao-0123abcd-job2|gpu-node01|2024-03-05T10:13:00|None"


def poller(slurm: Slurm, clock: Clock | None = None, *, accounting: bool = True) -> StatePoller:
    return StatePoller(slurm, clock or Clock(), accounting=accounting)


def test_one_squeue_asks_about_every_active_job_and_nothing_else_is_asked_while_they_run() -> None:
    slurm = Slurm()
    slurm.say("squeue", squeue_lines(RUN_101, RUN_102))
    tick = poller(slurm).tick({"102", "101"})
    assert slurm.asked() == ["squeue --jobs=101,102"]
    assert set(tick.states) == {"101", "102"} and tick.states["101"].state == "RUNNING"
    assert not tick.lost


def test_a_job_that_left_squeue_is_asked_of_scontrol_alone_and_its_end_taken() -> None:
    slurm = Slurm()
    slurm.say("squeue", squeue_lines(RUN_102))
    slurm.say("scontrol", Answer(0, scontrol_ended("FAILED", "NonZeroExitCode", "3:0")))
    tick = poller(slurm).tick({"101", "102"})
    assert slurm.asked() == ["squeue --jobs=101,102", "scontrol 101"]
    assert tick.states["101"].ended and tick.states["101"].exit_code == 3 and tick.states["102"].state == "RUNNING"


def test_a_job_squeue_shows_ended_still_gets_its_exit_code_from_scontrol() -> None:
    slurm = Slurm()
    slurm.say("squeue", squeue_lines("101|COMPLETED|tao-0123abcd-job1|gpu-node01|2024-03-05T10:12:44|None"))
    slurm.say("scontrol", Answer(0, scontrol_ended("COMPLETED", "None", "0:0")))
    assert poller(slurm).tick({"101"}).states["101"].exit_code == 0


def test_a_job_slurmctld_forgot_is_asked_of_sacct_with_accounting() -> None:
    slurm = Slurm()
    slurm.say("squeue", INVALID)
    slurm.say("scontrol", INVALID)
    slurm.say("sacct", Answer(0, SACCT))
    tick = poller(slurm).tick({"101"})
    assert slurm.asked() == ["squeue --jobs=101", "scontrol 101", "sacct --jobs=101"]
    assert tick.states["101"].exit_code == 0 and not tick.lost


def test_without_accounting_sacct_is_never_asked() -> None:
    slurm = Slurm()
    slurm.say("squeue", INVALID)
    slurm.say("scontrol", INVALID)
    poller(slurm, accounting=False).tick({"101"})
    assert slurm.asked() == ["squeue --jobs=101", "scontrol 101"]


def test_a_cluster_that_says_it_keeps_no_accounting_is_not_asked_again() -> None:
    slurm = Slurm()
    slurm.say("squeue", INVALID, INVALID)
    slurm.say("scontrol", INVALID, INVALID)
    slurm.say("sacct", Answer(1, "", "sacct: error: Slurm accounting storage is disabled\n"))
    states = poller(slurm)
    states.tick({"101"})
    states.tick({"101"})
    assert [call for call in slurm.asked() if call.startswith("sacct")] == ["sacct --jobs=101"]
    assert states.accounting is False


def test_one_empty_answer_is_never_gone_two_in_a_row_are_lost() -> None:
    slurm = Slurm()
    states = poller(slurm, accounting=False)
    first = states.tick({"101"})  # squeue, scontrol and sacct all answer nothing
    assert not first.lost and "101" not in first.states
    assert states.tick({"101"}).lost == {"101"}


def test_an_answer_between_two_empty_ones_starts_the_count_again() -> None:
    slurm = Slurm()
    slurm.say("squeue", Answer(0, ""), squeue_lines(RUN_101), Answer(0, ""))
    states = poller(slurm, accounting=False)
    assert [states.tick({"101"}).lost for _ in range(3)] == [frozenset(), frozenset(), frozenset()]
    assert states.tick({"101"}).lost == {"101"}


def test_a_slurm_out_of_reach_is_unavailable_and_counts_no_miss() -> None:
    slurm = Slurm()
    slurm.say("squeue", Answer(0, ""), UNREACHABLE, UNREACHABLE)
    states = poller(slurm, accounting=False)
    states.tick({"101"})
    for _ in range(2):
        with pytest.raises(BackendUnavailable, match="Slurm did not answer squeue: slurm_load_jobs error: Unable to contact"):
            states.tick({"101"})
    slurm.say("squeue", squeue_lines(RUN_101))
    assert not states.tick({"101"}).lost


def test_scontrol_out_of_reach_is_unavailable_too() -> None:
    slurm = Slurm()
    slurm.say("scontrol", UNREACHABLE)
    with pytest.raises(BackendUnavailable, match="scontrol show job"):
        poller(slurm).tick({"101"})


def test_ticks_back_off_while_nothing_changes_and_come_fast_again_on_a_change() -> None:
    slurm, clock = Slurm(), Clock()
    states = poller(slurm, clock)
    assert states.due_in() == 0
    delays = []
    for answer in [RUN_101] * 6 + [RUN_101.replace("RUNNING", "COMPLETING")] + [RUN_101.replace("RUNNING", "COMPLETING")] * 2:
        slurm.say("squeue", squeue_lines(answer))
        states.tick({"101"})
        delays.append(states.delay)
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 0.5, 1.0, 2.0]


def test_a_new_job_makes_the_next_tick_come_soon() -> None:
    slurm, clock = Slurm(), Clock()
    states = poller(slurm, clock)
    for _ in range(4):
        slurm.say("squeue", squeue_lines(RUN_101))
        states.tick({"101"})
    assert states.delay == 4.0
    slurm.say("squeue", squeue_lines(RUN_101, RUN_102))
    assert states.tick({"101", "102"}).changed and states.delay == 0.5


def test_the_next_tick_is_due_after_the_delay_by_the_clock() -> None:
    slurm, clock = Slurm(), Clock()
    states = poller(slurm, clock)
    slurm.say("squeue", squeue_lines(RUN_101))
    states.tick({"101"})
    assert states.due_in() == 0.5
    clock.now += 0.2
    assert states.due_in() == pytest.approx(0.3)
    clock.now += 1
    assert states.due_in() == 0


def test_no_active_jobs_asks_nothing() -> None:
    slurm = Slurm()
    tick = poller(slurm).tick(set())
    assert slurm.calls == [] and tick.states == {} and not tick.lost


def test_slurm_s_commands_and_so_the_jobs_never_get_the_daemon_s_secrets() -> None:
    from tao_server.backends.slurm.command_runner import clean_environment

    given = {
        "PATH": "/usr/bin",
        "LC_ALL": "C.UTF-8",
        "SLURM_CONF": "/etc/slurm.conf",
        "NGC_API_KEY": "secret",
        "TAO_TOKEN": "t",
        "HOME": "/root",
    }
    assert clean_environment(given) == {"PATH": "/usr/bin", "LC_ALL": "C.UTF-8", "SLURM_CONF": "/etc/slurm.conf"}

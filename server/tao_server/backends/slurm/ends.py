"""How a Slurm job ended, in the contract's terms (RunExit): the task's own end, or Slurm's.

Two witnesses are read. The batch script records the task's exit code beside its output
(`<job>.exit`), and its trap leaves `<job>.signalled` when a TERM or INT reached it first; Slurm
keeps the job's end state (COMPLETED, CANCELLED, NODE_FAIL, TIMEOUT, ...) and an exit code that
is the script's, or 0:0 for a job that never ran.

    recorded, no signal          the task ended by itself: its own code, whatever Slurm says
    recorded, signalled          Slurm's state says who stopped it: CANCELLED reads `cancelled`,
                                 TIMEOUT `failed`, ...; COMPLETED or FAILED (the launcher's own
                                 cancel, a signal sent without ending the job) keep the task's code
    nothing recorded             Slurm's state alone: a job cancelled while pending, a node that
                                 failed, a script killed before it could write: never a success
                                 (but COMPLETED, whose code is the script's, which is the task's)

A job that did not end by itself ends `cancelled`, `failed` or `error`, its message naming Slurm's
state, never `succeeded`, whatever code it left: Slurm reports a pending job cancelled with
`scancel` as ExitCode 0:0. A node failure (NODE_FAIL) of a job that ran is a cut: its script and
container may run on while the node is cut off, until it comes back (slurm_backend.py sweeps it then).
"""

from __future__ import annotations

from typing import Literal

from tao_server.backends.base import Interruption, RunExit
from tao_server.backends.slurm.state import JobState
from tao_server.errors import LAUNCHER_FAILURE

EndStatus = Literal["cancelled", "failed", "error"]

# The end states in which Slurm, not the task, ended the job: the job's status, and why in words.
STOPPED_BY_SLURM: dict[str, tuple[EndStatus, str]] = {
    "CANCELLED": ("cancelled", "cancelled in Slurm, outside the launcher (scancel by its owner or an admin)"),
    "PREEMPTED": ("cancelled", "preempted: Slurm stopped it for a job of higher priority"),
    "REVOKED": ("cancelled", "revoked by Slurm: another cluster of its federation runs it"),
    "TIMEOUT": ("failed", "stopped by Slurm at its time limit"),
    "DEADLINE": ("failed", "ended by Slurm at its deadline"),
    "OUT_OF_MEMORY": ("failed", "ended by Slurm: it ran out of memory"),
    "NODE_FAIL": ("error", "its node failed"),
    "BOOT_FAIL": ("error", "its node failed to boot"),
}
_NODE_STATES = ("NODE_FAIL", "BOOT_FAIL")  # where the node and Slurm's reason (NodeDown, ...) say more


def slurm_end(slurm_id: str, recorded: int | None, signalled: bool, state: JobState | None) -> RunExit:
    """The run's end from the script's record (`recorded`, `signalled`) and Slurm's final `state`
    (None: Slurm no longer knows the job)."""
    stopped = STOPPED_BY_SLURM.get(state.state) if state is not None else None
    if recorded is not None and (not signalled or stopped is None):
        return RunExit(recorded)
    if state is None:
        return RunExit(LAUNCHER_FAILURE, f"Slurm job {slurm_id} ended without an exit code (Slurm no longer knows it)")
    if stopped is None:  # COMPLETED or FAILED, and the script wrote nothing: it was killed before it could
        return _unrecorded(slurm_id, state)
    status, what = stopped
    ran = state.nodes is not None
    exit_code = recorded if recorded is not None else _exit_code(status, state, ran)
    cut = state.state == "NODE_FAIL" and recorded is None and ran
    return RunExit(exit_code, interrupted=Interruption(status, f"{what} ({_said(slurm_id, state)})"), cut=cut)


def _exit_code(status: EndStatus, state: JobState, ran: bool) -> int | None:
    """The code a job Slurm ended gets without the script's record: 125 where the launcher's ground
    failed (a node), else Slurm's (143 for a TERM), or None for a job that never ran."""
    if status == "error":
        return LAUNCHER_FAILURE
    return state.exit_code if ran and state.exit_code else None


def _unrecorded(slurm_id: str, state: JobState) -> RunExit:
    """A job Slurm did not stop whose script recorded nothing (a shared dir it could not write, a
    script killed): Slurm's word for a script that completed; never a success otherwise."""
    if state.state == "COMPLETED" and state.exit_code is not None:
        return RunExit(state.exit_code)  # the script exits with the task's code
    if state.exit_code:
        return RunExit(state.exit_code, interrupted=Interruption("failed", f"its batch script was killed ({_said(slurm_id, state)})"))
    return RunExit(LAUNCHER_FAILURE, f"Slurm job {slurm_id} ended {state.state} without the task's exit code (its script recorded none)")


def _said(slurm_id: str, state: JobState) -> str:
    """What Slurm said of the job: "Slurm job 12 ended NODE_FAIL on node n1, reason NodeDown"."""
    said = f"Slurm job {slurm_id} ended {state.state}"
    if state.state in _NODE_STATES:
        node = state.batch_host or state.nodes
        said += f" on node {node}" if node else ""
        said += f", reason {state.reason}" if state.reason else ""
    return said

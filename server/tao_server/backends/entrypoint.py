"""An entrypoint that could not run, named as `docker run` names it: 127 missing, 126 not executable.

Shared by the backends that run containers with an init as PID 1 (docker run --init, on the
engine or in a Slurm batch job): the init reports an exec it could not do as its first line.
"""

from __future__ import annotations

import re

from tao_server.errors import CANNOT_EXECUTE, NOT_FOUND, LaunchFailure

_INIT_EXEC_FAILURE = re.compile(rb"^\[FATAL tini \(\d+\)\] exec (.+?) failed: (.+?)\r?\n")
HEAD_SIZE = 4096  # enough for the init's report of an entrypoint it could not exec


def exec_failure(program: str, reason: str) -> LaunchFailure | None:
    """`docker run`'s 127 for an entrypoint that does not exist, 126 for one that cannot be executed."""
    lowered = reason.lower()
    if "not found" in lowered or "no such file" in lowered:
        return LaunchFailure(f"the task's entrypoint {program!r} does not exist in the image ({reason})", NOT_FOUND)
    if "permission denied" in lowered:
        return LaunchFailure(f"the task's entrypoint {program!r} cannot be executed ({reason})", CANNOT_EXECUTE)
    return None


def init_exec_failure(exit_code: int, output_head: bytes) -> LaunchFailure | None:
    """The init that runs as PID 1 reports an entrypoint it could not exec; name it as docker run would."""
    if exit_code not in (CANNOT_EXECUTE, NOT_FOUND):
        return None
    match = _INIT_EXEC_FAILURE.match(output_head)
    if match is None:
        return None
    program, reason = (part.decode(errors="replace") for part in match.groups())
    return exec_failure(program, reason)

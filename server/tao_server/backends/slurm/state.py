"""What Slurm says about the daemon's jobs, and the poller that decides what to ask it each tick.

Three answers are read, as Slurm 22.05 prints them:

    squeue --noheader --states=all --jobs=ID,... --format=%i|%T|%j|%N|%S|%r
        every active job in one call. '|' cannot occur in an id, a state, our job names, a node
        list or a time; the reason comes last, as the one field that may hold anything (an
        admin's text), even '|' or a line break.
    scontrol show job -d ID
        a job that left squeue or ended in it: JobState, Reason, ExitCode, the GPUs' indices
        (GRES=gpu:2(IDX:0-1) on its Nodes= line), while slurmctld still remembers it.
    sacct --noheader --parsable2 --allocations --jobs=ID,... --format=JobID,State,ExitCode,Start,NodeList,JobName
        a job slurmctld has forgotten, where the cluster keeps accounting.

StatePoller runs none of them itself: it is given a function that runs a command and a clock,
and decides. Each tick asks squeue once for every active job; scontrol only for the jobs that
left it or ended in it; sacct only for the ones scontrol no longer knows, and only with
accounting. No answer at all about a job is "unknown, ask again": a job is declared lost only
after two such ticks in a row. A command that fails (slurmctld out of reach) is
BackendUnavailable, never an empty answer. Ticks come 0.5 s apart while something changes and
back off, doubling, to 5 s while nothing does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field

from tao_server.errors import BackendUnavailable

SQUEUE_FORMAT = "%i|%T|%j|%N|%S|%r"
SACCT_FORMAT = "JobID,State,ExitCode,Start,NodeList,JobName"
# States from which a job does not go on (REQUEUED, SPECIAL_EXIT and the holds do).
ENDED_STATES = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY", "REVOKED"}
)
_UNKNOWN_JOB = "Invalid job id specified"
_NO_ACCOUNTING = "accounting storage is disabled"
_EMPTY = ("", "N/A", "(null)", "None", "Unknown")
_KEY = re.compile(r"(?:^|\s)([A-Za-z][\w/:]*)=")
_GPU_IDX = re.compile(r"(?:^|,)gpu[^(,]*\(IDX:([^)]*)\)")


@dataclass(frozen=True)
class Answer:
    """What a command gave back."""

    returncode: int
    stdout: str
    stderr: str = ""


Runner = Callable[[Sequence[str]], Answer]


@dataclass(frozen=True)
class JobState:
    """One job as Slurm reports it. `exit_code` is the batch script's (128 + N when signal N ended
    it), known once the job ended and scontrol or sacct said; `gpus` are the batch host's indices;
    `batch_host` is the node its script runs on (scontrol only)."""

    job_id: str
    state: str
    reason: str | None = None
    exit_code: int | None = None
    nodes: str | None = None
    start_time: str | None = None
    name: str | None = None
    gpus: tuple[int, ...] = ()
    batch_host: str | None = None

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES

    @property
    def pending(self) -> bool:
        """Still waiting for Slurm to run it: PENDING, or CONFIGURING while its nodes boot."""
        return self.state in ("PENDING", "CONFIGURING")


def squeue_command(job_ids: Iterable[str]) -> list[str]:
    return ["squeue", "--noheader", "--states=all", f"--jobs={','.join(job_ids)}", f"--format={SQUEUE_FORMAT}"]


def scontrol_command(job_id: str) -> list[str]:
    return ["scontrol", "show", "job", "-d", job_id]


def sacct_command(job_ids: Iterable[str]) -> list[str]:
    return ["sacct", "--noheader", "--parsable2", "--allocations", f"--jobs={','.join(job_ids)}", f"--format={SACCT_FORMAT}"]


def parse_squeue(text: str) -> dict[str, JobState]:
    """squeue's lines in SQUEUE_FORMAT, by job id. A line with too few fields is the rest of the
    previous job's reason, which held a line break."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        fields = line.split("|", 5)
        if len(fields) == 6:
            rows.append(fields)
        elif rows:
            rows[-1][5] += "\n" + line
    return {row[0].strip(): _squeue_state(row) for row in rows}


def _squeue_state(row: list[str]) -> JobState:
    job_id, state, name, nodes, start, reason = (value.strip() for value in row)
    return JobState(job_id, _base_state(state), _value(reason), None, _value(nodes), _value(start), _value(name))


def parse_scontrol(text: str) -> JobState | None:
    """`scontrol show job -d` for one job; None for text with no JobId."""
    lines = text.splitlines()
    record = _key_values(lines)
    if "JobId" not in record:
        return None
    return JobState(
        job_id=record["JobId"],
        state=_base_state(record.get("JobState", "")),
        reason=_value(record.get("Reason", "")),
        exit_code=exit_status(record.get("ExitCode", "")),
        nodes=_value(record.get("NodeList", "")),
        start_time=_value(record.get("StartTime", "")),
        name=_value(record.get("JobName", "")),
        gpus=_batch_host_gpus(lines),
        batch_host=_value(record.get("BatchHost", "")),
    )


def _key_values(lines: Iterable[str]) -> dict[str, str]:
    """Key=Value pairs; a value runs to the next key, so one may hold spaces. The first of a key wins
    (-d repeats Nodes= and GRES= once per node)."""
    record: dict[str, str] = {}
    for line in lines:
        keys = list(_KEY.finditer(line))
        if not keys:
            continue
        ends = [following.start() for following in keys[1:]] + [len(line)]
        for key, end in zip(keys, ends, strict=True):
            record.setdefault(key.group(1), line[key.end() : end].strip())
    return record


def _batch_host_gpus(lines: Iterable[str]) -> tuple[int, ...]:
    """The GPU indices of the first node the job holds (the batch host, where its script runs)."""
    for line in lines:
        if line.lstrip().startswith("Nodes="):
            gres = _key_values([line]).get("GRES", "")
            return tuple(index for match in _GPU_IDX.finditer(gres) for index in index_list(match.group(1)))
    return ()


def index_list(text: str) -> list[int]:
    """Slurm's "0-1,3" as [0, 1, 3]; "N/A" or nothing as []."""
    indices: list[int] = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        if first.isdigit():
            indices += range(int(first), int(last or first) + 1)
    return indices


def parse_sacct(text: str) -> dict[str, JobState]:
    """sacct's --parsable2 lines in SACCT_FORMAT, by job id; step lines (ID.batch) are left out."""
    states: dict[str, JobState] = {}
    for line in text.splitlines():
        fields = line.split("|", 5)
        if len(fields) == 6 and "." not in fields[0]:
            job_id, state, exit_code, start, nodes, name = fields
            states[job_id] = JobState(job_id, _base_state(state), None, exit_status(exit_code), _value(nodes), _value(start), _value(name))
    return states


def exit_status(text: str) -> int | None:
    """Slurm's ExitCode "CODE:SIGNAL" as a shell would report it: the code, or 128 + the signal."""
    code, _, signal = text.strip().partition(":")
    if not (code.isdigit() and signal.isdigit()):
        return None
    return 128 + int(signal) if int(signal) else int(code)


def _base_state(text: str) -> str:
    """The state alone: sacct says "CANCELLED by 1000"."""
    return text.strip().split(" ", 1)[0]


def _value(text: str) -> str | None:
    return None if text in _EMPTY else text


@dataclass(frozen=True)
class Tick:
    """One tick's outcome: what Slurm said of each job it knew, the jobs now declared lost, and
    whether anything differs from the tick before."""

    states: dict[str, JobState] = field(default_factory=dict)
    lost: frozenset[str] = frozenset()
    changed: bool = False


class StatePoller:
    """Decides what to ask Slurm about the active jobs, and when; see the module's docstring."""

    def __init__(
        self,
        run: Runner,
        clock: Callable[[], float],
        *,
        accounting: bool,
        first_delay: float = 0.5,
        max_delay: float = 5.0,
        misses_before_lost: int = 2,
    ) -> None:
        self._run = run
        self._clock = clock
        self.accounting = accounting
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._misses_before_lost = misses_before_lost
        self.delay = first_delay
        self._next_at: float | None = None  # None: due now
        self._misses: dict[str, int] = {}
        self._last: dict[str, JobState] = {}
        self._last_ids: list[str] = []

    def hurry(self) -> None:
        """Ask at the next chance and poll quickly again: something just changed (a submission, a cancel)."""
        self.delay = self._first_delay
        self._next_at = None

    def due_in(self) -> float:
        """Seconds until the next tick is due; 0 when it is."""
        return 0.0 if self._next_at is None else max(0.0, self._next_at - self._clock())

    def tick(self, active: Collection[str]) -> Tick:
        """Ask about the `active` jobs; BackendUnavailable when Slurm does not answer (nothing is counted then)."""
        job_ids = sorted(set(active))
        states = self._ask(job_ids) if job_ids else {}
        unanswered = [job_id for job_id in job_ids if job_id not in states]
        self._misses = {job_id: self._misses.get(job_id, 0) + 1 for job_id in unanswered}
        lost = frozenset(job_id for job_id, misses in self._misses.items() if misses >= self._misses_before_lost)
        changed = bool(lost) or states != self._last or job_ids != self._last_ids
        self._last, self._last_ids = states, job_ids
        self._schedule(changed)
        return Tick(states, lost, changed)

    def _ask(self, job_ids: list[str]) -> dict[str, JobState]:
        listed = self.squeue(job_ids)
        ended_or_gone = [job_id for job_id in job_ids if job_id not in listed or listed[job_id].ended]
        detailed = {job_id: state for job_id in ended_or_gone if (state := self.scontrol(job_id)) is not None}
        forgotten = [job_id for job_id in ended_or_gone if job_id not in detailed]
        accounted = self.sacct(forgotten) if forgotten and self.accounting else {}
        # The later commands know more of a job than squeue (its exit code): theirs win.
        return {job_id: state for job_id, state in {**listed, **detailed, **accounted}.items() if job_id in job_ids}

    def _schedule(self, changed: bool) -> None:
        self.delay = self._first_delay if changed else min(self.delay * 2, self._max_delay)
        self._next_at = self._clock() + self.delay

    def squeue(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        answer = self._run(squeue_command(job_ids))
        if answer.returncode != 0:
            if _UNKNOWN_JOB in answer.stderr:  # none of them is known any more: an empty answer
                return {}
            raise _unavailable("squeue", answer)
        return parse_squeue(answer.stdout)

    def scontrol(self, job_id: str) -> JobState | None:
        answer = self._run(scontrol_command(job_id))
        if answer.returncode != 0:
            if _UNKNOWN_JOB in answer.stderr:
                return None
            raise _unavailable("scontrol show job", answer)
        return parse_scontrol(answer.stdout)

    def sacct(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        answer = self._run(sacct_command(job_ids))
        if answer.returncode != 0:
            if _NO_ACCOUNTING in answer.stderr:  # the cluster keeps none after all: stop asking
                self.accounting = False
                return {}
            raise _unavailable("sacct", answer)
        return parse_sacct(answer.stdout)


def _unavailable(command: str, answer: Answer) -> BackendUnavailable:
    said = answer.stderr.strip() or f"exit status {answer.returncode}"
    return BackendUnavailable(f"Slurm did not answer {command}: {said}")

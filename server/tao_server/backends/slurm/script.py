"""The sbatch script of one job: its container run on a Slurm node by docker, pyxis or Apptainer.

The script is rendered from the job's ContainerRequest (backends/container.py), the same mapping
the Docker backend uses, plus the job's Slurm options. Its `#SBATCH` lines ask Slurm for the job
(name `tao-<daemon id, 8>-<job id>`, a comment with the whole daemon id for adoption, GPUs as
`--gres=gpu:N`, the output file in the shared directory); its body starts the container and waits:

    docker     `docker run --init --rm` as the Docker backend would create the container, labelled
               with the Slurm job id, NVIDIA_VISIBLE_DEVICES from the GPUs Slurm allocated
    pyxis      `srun --container-image=... --container-mounts=... --container-env=NAMES argv`
    apptainer  `apptainer exec --cleanenv --no-home [--nv] --mount ... docker://IMAGE argv`

In every runtime the argv reaches the task as a list, byte for byte: each value sits in a bash
array, shell-quoted; nothing is joined into a command string. Environment values travel in the
runtime command's own environment (never on a command line, which every user of the node can
read): by name for docker (`--env NAME`) and pyxis (`--container-env=NAMES`), as APPTAINERENV_NAME
for Apptainer.

A TERM (scancel --batch --signal=TERM; Slurm's own at the time limit) reaches the task: the trap
runs `docker stop -t <stop timeout>`, or passes the signal to srun or apptainer, which pass it on.
The container's exit code is written next to the output (`<name>.exit`), so the daemon knows it
without Slurm accounting, and the script exits with it. The trap first leaves `<name>.signalled`:
a signal, not the task, may have ended it, and the daemon then asks Slurm why (slurm/ends.py). A request the runtime cannot honour is
refused before anything is submitted, naming the option (LaunchFailure, 125).

What differs by runtime, beyond the refusals: docker runs the image's ENTRYPOINT before the
command; pyxis does so only where the site enables it; `apptainer exec` never does (`apptainer run`
would, but its runscript re-reads the arguments through a shell). Apptainer appends its own
library directory to LD_LIBRARY_PATH and cannot set HOME.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from tao_server.backends.base import Mount
from tao_server.backends.container import ContainerRequest, docker_run, mount_spec
from tao_server.errors import LaunchFailure

RUNTIMES = ("docker", "pyxis", "apptainer")
LABEL_SLURM_JOB = "org.tao-launcher.slurm-job"
EXIT_SUFFIX = ".exit"
OUTPUT_SUFFIX = ".out"  # what the task printed, which the daemon follows into the job's log
SLURM_SUFFIX = ".slurm"  # what Slurm itself writes about the job
GRACE_SUFFIX = ".grace"  # seconds a cancel gives the task, written by the daemon before it signals
SIGNALLED_SUFFIX = ".signalled"  # left by the script's trap: a TERM or INT reached it before the task ended

_DIRECTIVE_SAFE = re.compile(r"[^\s\"'\\#%]+")  # sbatch reads #SBATCH lines with quoting of its own
_TIME_LIMIT = re.compile(r"\d+(?:-\d+)?(?::\d+){0,2}|UNLIMITED|INFINITE")
# Values the script reads when it runs, by variable: Slurm's allocation, not the request's.
_GPUS_FROM_ALLOCATION = '"${gpus:-void}"'
_CUDA_FROM_SLURM = '"${CUDA_VISIBLE_DEVICES:-}"'
# Names that steer srun, pyxis or enroot themselves rather than reaching the task.
_PYXIS_OWN = re.compile(r"(?:SLURM|SRUN|SPANK|PYXIS|ENROOT)_\w*")
# Names Apptainer will not set from APPTAINERENV_ (HOME, its own), or strips before the task.
_APPTAINER_OWN = re.compile(r"HOME|(?:APPTAINER|SINGULARITY)_\w*")


@dataclass(frozen=True)
class SlurmOptions:
    """What the job asks of Slurm. `time_limit` is in sbatch's own forms ("90", "1-00:00:00");
    `extra_args` are the daemon's default sbatch arguments ("--account=ml"), after ours."""

    partition: str | None = None
    gpus: int = 0
    nodes: int = 1
    time_limit: str | None = None
    extra_args: tuple[str, ...] = ()
    # Slurm job ids it waits for: those that must succeed (afterok), those that need only end (afterany).
    after_ok: tuple[str, ...] = ()
    after_any: tuple[str, ...] = ()


@dataclass(frozen=True)
class BatchJob:
    """Whose job the script runs, where its files go, and how. `runs_as` is the uid:gid the
    Slurm job runs as (a `user` option must name it under pyxis and Apptainer)."""

    daemon_id: str
    job_id: str
    shared_dir: str
    runtime: str = "docker"
    gpu_mode: str = "request"
    stop_timeout: float = 10.0
    runs_as: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        """The Slurm job's name and the container's: the daemon's and the job's ids."""
        return f"tao-{self.daemon_id[:8]}-{self.job_id}"

    @property
    def comment(self) -> str:
        return f"tao-launcher:daemon={self.daemon_id}:job={self.job_id}"

    def path(self, suffix: str) -> str:
        return str(PurePosixPath(self.shared_dir) / f"{self.name}{suffix}")


def render(request: ContainerRequest, job: BatchJob, slurm: SlurmOptions) -> str:
    """The batch script for `request`; LaunchFailure names an option the runtime cannot honour."""
    if job.runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {job.runtime!r}; one of {', '.join(RUNTIMES)}")
    if request.gpus:
        raise ValueError("on Slurm the GPUs come from the allocation: ask with SlurmOptions.gpus, not devices")
    _refuse_what_cannot_map(request, job)
    body = {"docker": _docker_body, "pyxis": _pyxis_body, "apptainer": _apptainer_body}[job.runtime](request, job, slurm)
    return "\n".join(["#!/bin/bash", *directives(request, job, slurm), *_prelude(job, slurm), *body, ""])


def directives(request: ContainerRequest, job: BatchJob, slurm: SlurmOptions) -> list[str]:
    """The #SBATCH lines: what Slurm is asked for, then the daemon's defaults (the last one wins)."""
    args = [
        f"--job-name={job.name}",
        f"--comment={job.comment}",
        f"--output={job.path(SLURM_SUFFIX)}",  # Slurm's own words ("*** JOB 7 CANCELLED ***"), apart from the task's
        f"--chdir={job.shared_dir}",
        "--open-mode=append",  # a restarted slurmctld must not truncate what the daemon has read
        "--no-requeue",  # a job runs once: the daemon follows one run
        # The job gets sbatch's environment, which the daemon cleans to PATH, locale and SLURM_* (command_runner.py):
        # its own (NGC_API_KEY, TAO_*) never reaches a job. Not NONE or NIL: with either, slurmstepd loads the
        # user's login environment on the node first (su - USER), a second or more per job (bench figure 15).
        "--export=ALL",
        f"--nodes={slurm.nodes}",
        *_resource_args(request, slurm),
        *dependency_args(slurm),
        *slurm.extra_args,
    ]
    return [f"#SBATCH {directive_safe(arg)}" for arg in args]


def _resource_args(request: ContainerRequest, slurm: SlurmOptions) -> list[str]:
    args = [f"--partition={slurm.partition}"] if slurm.partition else []
    args += [f"--gres=gpu:{slurm.gpus}"] if slurm.gpus else []
    if slurm.time_limit is not None:
        if not _TIME_LIMIT.fullmatch(slurm.time_limit):
            raise ValueError(f"time limit {slurm.time_limit!r} is not in a form sbatch takes (minutes, D-HH:MM:SS, ...)")
        args.append(f"--time={slurm.time_limit}")
    # Slurm schedules by these; the docker runtime also enforces them, its container being outside Slurm's cgroup.
    args += [f"--mem={math.ceil(request.mem_limit / 1024)}K"] if request.mem_limit else []
    args += [f"--cpus-per-task={math.ceil(request.nano_cpus / 10**9)}"] if request.nano_cpus else []
    return args


def dependency_args(slurm: SlurmOptions) -> list[str]:
    """Slurm holds the job until its dependencies end, and ends it (CANCELLED, DependencyNeverSatisfied)
    when one cannot be satisfied any more: it never waits forever on a dependency that failed."""
    kinds = [f"{kind}:{':'.join(ids)}" for kind, ids in (("afterok", slurm.after_ok), ("afterany", slurm.after_any)) if ids]
    for job_id in (*slurm.after_ok, *slurm.after_any):
        if not job_id.isdigit():
            raise ValueError(f"dependency {job_id!r} is not a Slurm job id")
    return [f"--dependency={','.join(kinds)}", "--kill-on-invalid-dep=yes"] if kinds else []


def directive_safe(arg: str) -> str:
    if not _DIRECTIVE_SAFE.fullmatch(arg):
        raise ValueError(f"sbatch argument {arg!r} cannot go on an #SBATCH line: no spaces, quotes, backslashes, '#' or '%'")
    return arg


def _prelude(job: BatchJob, slurm: SlurmOptions) -> list[str]:
    """What every runtime's body starts from: finish (record the exit code, exit with it), fail, the GPUs."""
    lines = [
        f"# tao-launcher job {_comment_safe(job.job_id)}, run by {job.runtime}. Every value below is shell-quoted.",
        "set -u",
        'export PATH="${PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}"',
        # The task's output, and only it (and this script's own complaints): Slurm writes its messages to --output.
        f"exec >>{shlex.quote(job.path(OUTPUT_SUFFIX))} 2>&1",
        f"exit_file={shlex.quote(job.path(EXIT_SUFFIX))}",
        f"signalled_file={shlex.quote(job.path(SIGNALLED_SUFFIX))}",
        "finish() {  # the exit code beside the output, where the daemon reads it without Slurm accounting",
        '  printf \'%s\\n\' "$1" > "$exit_file.tmp" && mv -f "$exit_file.tmp" "$exit_file"',
        '  exit "$1"',
        "}",
        "fail() { printf 'tao: %s\\n' \"$1\" >&2; finish 125; }",
        "gpus=${SLURM_JOB_GPUS:-${CUDA_VISIBLE_DEVICES:-}}  # the GPUs' indices on this node",
    ]
    if slurm.gpus:
        lines.append(f'[ -n "$gpus" ] || fail "Slurm named no GPUs for this job (SLURM_JOB_GPUS is empty); it asked for {slurm.gpus}"')
    return lines


def _comment_safe(text: str) -> str:
    return text.replace("\n", " ")


def _docker_body(request: ContainerRequest, job: BatchJob, slurm: SlurmOptions) -> list[str]:
    command = docker_run(request, job.gpu_mode, remove=True)
    # Not --quiet: a node that pulls the image says so in the job's output ("Unable to find image ... locally", then the pull).
    lines = [
        _resolve("docker"),
        f"name={shlex.quote(request.name)}",
        _array("run", ['"$docker"', "run", *_quoted(command.options)]),
        f'run+=(--label "{LABEL_SLURM_JOB}=$SLURM_JOB_ID")',
    ]
    if job.gpu_mode == "request":
        # --gpus reads CSV: a list of devices is one quoted field.
        lines.append('[ -z "$gpus" ] || run+=(--gpus "\\"device=$gpus\\"")')
    lines += [_array("run+", _quoted(command.target))]
    lines += _docker_stop(job)
    lines += _launch(_env_words(command.env, {"NVIDIA_VISIBLE_DEVICES": _GPUS_FROM_ALLOCATION}), "docker_stop")
    # A code under 125 is the task's, relayed by a CLI that saw --rm done: no second docker process (a
    # next step waits for this job's end: bench figure 28). 125 and up may be the CLI's own death.
    remove = '[ "$code" -lt 125 ] || "$docker" rm -f "$name" >/dev/null 2>&1  # the CLI may have died before --rm could act'
    return [*lines, remove, 'finish "$code"']


def _docker_stop(job: BatchJob) -> list[str]:
    """A running container gets `docker stop` (TERM through its init, KILL after the stop timeout),
    once; before it runs, the CLI is stopped instead, with any container it made."""
    grace = math.ceil(max(0.0, job.stop_timeout))
    # The daemon writes a cancel's grace beside the script (GRACE_SUFFIX) before it signals; Slurm's own
    # TERM (the time limit) finds none and takes the stop timeout.
    return [
        "docker_stop() {",
        '  if [ "$("$docker" container inspect --format \'{{.State.Running}}\' "$name" 2>/dev/null)" = true ]; then',
        f"    grace=$(cat {shlex.quote(job.path(GRACE_SUFFIX))} 2>/dev/null || echo {grace})",
        f'    "$docker" stop -t "${{grace:-{grace}}}" "$name" >/dev/null 2>&1',
        "  else  # still pulling or creating it",
        '    kill -TERM "$child" 2>/dev/null; "$docker" rm -f "$name" >/dev/null 2>&1',
        "  fi",
        "}",
    ]


def _pyxis_body(request: ContainerRequest, job: BatchJob, slurm: SlurmOptions) -> list[str]:
    env = request.environment
    options = [f"--container-image={pyxis_image(request.image)}", "--no-container-mount-home", "--no-container-remap-root"]
    options += [f"--container-mounts={','.join(pyxis_mount(m) for m in request.mounts)}"] if request.mounts else []
    options += [f"--container-env={','.join(env)}"]
    # srun passes its environment on: the task gets srun's, ours (the cleaned one sbatch had) included.
    words = ['"$srun"', "--export=ALL", *_quoted(options), *_quoted(request.command)]
    lines = [_resolve("srun"), _array("run", words)]
    at_run = {"NVIDIA_VISIBLE_DEVICES": _GPUS_FROM_ALLOCATION}
    return [*lines, *_launch(_env_words(env, at_run), 'kill -TERM "$child" 2>/dev/null'), 'finish "$code"']


def _apptainer_body(request: ContainerRequest, job: BatchJob, slurm: SlurmOptions) -> list[str]:
    options = ["--cleanenv", "--no-home", *(["--nv"] if slurm.gpus else [])]
    options += [item for m in request.mounts for item in ("--mount", mount_spec(m))]
    words = ['"$apptainer"', "exec", *_quoted([*options, f"docker://{request.image}", *request.command])]
    lines = [_resolve("apptainer")]
    if request.ulimits:  # limits pass through exec; prlimit says so when the node does not allow one
        lines.append(_resolve("prlimit"))
        words = ['"$prlimit"', *_quoted(prlimit_options(request)), "--", *words]
    env = {f"APPTAINERENV_{name}": value for name, value in request.environment.items()}
    at_run = {"APPTAINERENV_NVIDIA_VISIBLE_DEVICES": _GPUS_FROM_ALLOCATION}
    if slurm.gpus and "CUDA_VISIBLE_DEVICES" not in (request.env or {}):  # --cleanenv would drop Slurm's
        at_run["APPTAINERENV_CUDA_VISIBLE_DEVICES"] = _CUDA_FROM_SLURM
    lines.append(_array("run", words))
    return [*lines, *_launch(_env_words(env, at_run), 'kill -TERM "$child" 2>/dev/null'), 'finish "$code"']


def _resolve(program: str) -> str:
    """The program's path, found before the job's PATH (which goes to the task) is in force."""
    return f'{program}=$(command -v {program}) || fail "{program} is not installed on $(hostname)"'


def _launch(env_words: list[str], stop: str) -> list[str]:
    """Start the runtime in the background (a trap runs only between commands, and `wait` is one),
    stop it on TERM, and keep waiting until its own exit code is in."""
    return [
        _array("job_env", env_words),
        f"stop() {{ {stop}; }}",
        "trap 'stopping=1; : >\"$signalled_file\"; stop' TERM INT",
        'env "${job_env[@]}" "${run[@]}" &',
        "child=$!",
        "while :; do",
        "  stopping=0",
        '  wait "$child"; code=$?',
        '  [ "$stopping" = 1 ] || break  # the trap cut the wait short: the runtime\'s own code comes next',
        "done",
    ]


def _env_words(env: Mapping[str, str], at_run: Mapping[str, str]) -> list[str]:
    """NAME=VALUE words for `env`, each quoted; `at_run` names variables whose value is a shell
    expansion read when the job runs (the allocation's GPUs), in place of or after the request's."""
    words = [shlex.quote(f"{name}={value}") for name, value in env.items() if name not in at_run]
    return words + [f"{name}={expansion}" for name, expansion in at_run.items()]


def _array(name: str, words: Iterable[str]) -> str:
    """A bash array assignment of words already quoted, one a line so that a reader can follow it."""
    operator = "+=" if name.endswith("+") else "="
    return f"{name.rstrip('+')}{operator}(\n  " + "\n  ".join(words) + "\n)"


def _quoted(words: Iterable[str]) -> list[str]:
    return [shlex.quote(w) for w in words]


def pyxis_image(image: str) -> str:
    """A Docker reference in enroot's form: the registry ends with '#' ("nvcr.io#nvidia/tao:5")."""
    if "@" in image:
        raise LaunchFailure(f"image {image!r}: pyxis names images as [USER@][REGISTRY#]IMAGE[:TAG], with no digest form; use a tag")
    first, slash, rest = image.partition("/")
    is_registry = slash and ("." in first or ":" in first or first == "localhost")
    return f"{first}#{rest}" if is_registry else image


def pyxis_mount(mount: Mount) -> str:
    """SRC:DST[:ro] for --container-mounts, which splits entries at ',' and fields at ':', and
    hands them to enroot's fstab, which splits at white space: a path holding one cannot be said."""
    for path in (mount.source, mount.destination):
        if re.search(r"[,:\s]", path):
            raise LaunchFailure(
                f"Mounts: {path!r} holds a comma, a colon or white space, which pyxis's --container-mounts cannot carry; rename it",
                field="Mounts",
            )
    return f"{mount.source}:{mount.destination}" + (":ro" if mount.read_only else "")


def prlimit_options(request: ContainerRequest) -> list[str]:
    return [f"--{u.name}={_limit(u.soft)}:{_limit(u.hard)}" for u in request.ulimits]


def _limit(value: int) -> str:
    return "unlimited" if value == -1 else str(value)


def _refuse_what_cannot_map(request: ContainerRequest, job: BatchJob) -> None:
    if job.runtime == "docker":
        return
    for field, reason in _unmappable(request, job):
        raise LaunchFailure(f"{field}: {job.runtime} on a Slurm node cannot honour it: {reason}", field=field)
    own = _PYXIS_OWN if job.runtime == "pyxis" else _APPTAINER_OWN
    for name in request.env or {}:
        if own.fullmatch(name):
            raise LaunchFailure(f"Envs: {name} cannot be set in a task under {job.runtime}, which keeps that name for itself", field="Envs")


def _unmappable(request: ContainerRequest, job: BatchJob) -> Iterable[tuple[str, str]]:
    """(option, why) for each option the task on a node cannot have as Docker would give it."""
    shared = "the task shares the node's network and IPC"
    if request.ports:
        yield "DockerOptions.ports", f"{shared}: nothing is published or remapped; remove ports"
    if request.network not in (None, "host"):
        yield "DockerOptions.network", f'{shared}; only "host" holds'
    if request.ipc not in (None, "host"):
        yield "DockerOptions.ipc", f'{shared}; only "host" holds'
    if request.privileged:
        yield "DockerOptions.privileged", "the task runs as its Slurm user, never privileged"
    if request.cap_add:
        yield "DockerOptions.cap_add", "the task runs as its Slurm user, with no capabilities to add"
    if request.devices:
        yield "DockerOptions.devices", "devices come from Slurm's allocation (GRES)"
    yield from _unmappable_identity(request, job)


def _unmappable_identity(request: ContainerRequest, job: BatchJob) -> Iterable[tuple[str, str]]:
    if request.user is not None and not _is_job_user(request.user, job.runs_as):
        yield "DockerOptions.user", f"the task runs as the user who owns the Slurm job{_owner(job.runs_as)}"
    # no-new-privileges holds already: an unprivileged task gains nothing from a setuid file there.
    for option in request.security_opt or ():
        if option not in ("no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"):
            yield "DockerOptions.security_opt", f"{option!r} is Docker's; only no-new-privileges holds"
    if request.ulimits and job.runtime == "pyxis":
        yield "DockerOptions.ulimits", "a pyxis task gets slurmd's limits, as the cluster's PropagateResourceLimits passes them on"
    if request.tty:
        yield "DockerOptions.tty", "a batch job has no terminal"


def _is_job_user(user: str, runs_as: tuple[int, int] | None) -> bool:
    return runs_as is not None and user in (str(runs_as[0]), f"{runs_as[0]}:{runs_as[1]}")


def _owner(runs_as: tuple[int, int] | None) -> str:
    return "" if runs_as is None else f" ({runs_as[0]}:{runs_as[1]})"

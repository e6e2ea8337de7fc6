"""After a node failure: what is left of a job on its node, stopped and removed once the node is back.

Slurm ends a job NODE_FAIL when its node stops answering (slurmd gone, the node set DOWN), but
the node may still run the job's script, and under the docker runtime its container is the
engine's, outside Slurm's reach. When the node comes back, slurmd stops what is left of the job:
the script's trap gets a TERM and stops its container, unless slurmctld has forgotten the job
meanwhile (MinJobAge) and the script is killed outright, leaving the container to run on. So the
daemon submits a sweep job to that node as soon as it sees the failure: Slurm holds it until the
node is back (ReqNodeNotAvail), then it stops and removes every container still labelled with the
failed job's Slurm id. Its end also tells the daemon that the job's output is complete: a cut
job's output is read on until then (slurm_run.py). Under pyxis and Apptainer nothing of the job
outlives its script; their sweep only marks the node's return.

The sweep runs as the job's owner, as the job did, on the job's partition with the daemon's
sbatch arguments (an account a cluster requires), for at most a few minutes.
"""

from __future__ import annotations

import math
import shlex

from tao_server.backends.container import LABEL_DAEMON
from tao_server.backends.slurm.script import LABEL_SLURM_JOB, BatchJob, directive_safe

SWEEP_SUFFIX = ".sweep"  # the sweep job's output, beside the job's
SWEEP_SCRIPT = "sweep.sbatch"
SWEEP_ID_FILE = "sweep-id"  # the sweep job's Slurm id; empty when none could be submitted
SWEEP_TIME_LIMIT = "10"  # minutes: a sweep stops containers, it never waits for one longer than its grace


def render_sweep(job: BatchJob, slurm_id: str, node: str, partition: str | None, extra_args: tuple[str, ...] = ()) -> str:
    """The sweep job of `job`, whose Slurm job `slurm_id` failed on `node`."""
    args = [
        f"--job-name={job.name}-sweep",
        f"--comment={job.comment}:sweep={slurm_id}",
        f"--nodelist={node}",
        "--nodes=1",
        "--ntasks=1",
        f"--output={job.path(SWEEP_SUFFIX)}",
        f"--chdir={job.shared_dir}",
        "--no-requeue",
        "--export=ALL",
        f"--time={SWEEP_TIME_LIMIT}",
        *([f"--partition={partition}"] if partition else []),
        *extra_args,
    ]
    lines = ["#!/bin/bash", *(f"#SBATCH {directive_safe(arg)}" for arg in args)]
    lines.append(f"# tao-launcher: Slurm job {slurm_id} of job {job.job_id.replace(chr(10), ' ')} ended NODE_FAIL on this node.")
    if job.runtime != "docker":
        return "\n".join([*lines, f"# Under {job.runtime} nothing of it outlives its script: this job only marks the node's return.", ""])
    return "\n".join([*lines, *_docker_sweep(job, slurm_id), ""])


def _docker_sweep(job: BatchJob, slurm_id: str) -> list[str]:
    """Stop (with the job's stop timeout, as a cancel would) and remove its containers."""
    filters = ["--filter", f"label={LABEL_DAEMON}={job.daemon_id}", "--filter", f"label={LABEL_SLURM_JOB}={slurm_id}"]
    grace = math.ceil(max(0.0, job.stop_timeout))
    return [
        "set -u",
        'docker=$(command -v docker) || { echo "tao: docker is not installed on $(hostname): nothing to sweep"; exit 0; }',
        f'mapfile -t found < <("$docker" ps -aq {shlex.join(filters)})',
        'if [ "${#found[@]}" -gt 0 ]; then',
        f'  "$docker" stop -t {grace} "${{found[@]}}" >/dev/null 2>&1',
        '  "$docker" rm -f "${found[@]}" >/dev/null 2>&1',
        "fi",
        f'echo "tao: swept ${{#found[@]}} container(s) of Slurm job {slurm_id} from $(hostname)"',
    ]

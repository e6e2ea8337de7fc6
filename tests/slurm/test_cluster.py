"""The test cluster is a real Slurm: batch jobs run, GPUs are gres that Slurm counts and hands out, scancel ends jobs.

Jobs that must stay running while a test looks at them wait for a gate file the test creates,
so nothing depends on how fast the machine is.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tao_server.testing.slurm import FINAL_STATES, SlurmCluster

pytestmark = pytest.mark.integration


def _submit(cluster: SlurmCluster, directory: Path, script: str, *options: str) -> str:
    """sbatch a one-line script with its output in directory/<job id>.out; the job's id."""
    output = cluster.command("sbatch", "--parsable", f"--output={directory}/%j.out", *options, "--wrap", script)
    return output.strip().split(";")[0]


def _gate(directory: Path, name: str) -> tuple[Path, str]:
    """A file the test creates to let a job go on, and the shell line that waits for it."""
    gate = directory / f"{name}.gate"
    return gate, f"while [ ! -e {gate} ]; do sleep 0.05; done"


def _eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _output(directory: Path, job_id: str) -> str:
    path = directory / f"{job_id}.out"
    return path.read_text() if path.exists() else ""


def test_a_batch_job_runs_and_writes_its_output_file(slurm: SlurmCluster, tmp_path: Path) -> None:
    job_id = _submit(slurm, tmp_path, "echo hello from job $SLURM_JOB_ID on $SLURMD_NODENAME")

    fields = slurm.wait_for_job(job_id, FINAL_STATES)

    assert (fields["JobState"], fields["ExitCode"]) == ("COMPLETED", "0:0")
    assert fields["Partition"] == slurm.partition
    assert _output(tmp_path, job_id) == f"hello from job {job_id} on {slurm.node}\n"


def test_the_node_offers_four_gpus_as_gres(slurm: SlurmCluster) -> None:
    node = slurm.command("scontrol", "show", "node", slurm.node)

    assert "Gres=gpu:4" in node.split()
    assert f"Partitions={slurm.partition}" in node.split()


def test_a_job_given_two_gpus_sees_their_indexes(slurm: SlurmCluster, tmp_path: Path) -> None:
    gate, wait = _gate(tmp_path, "gpus")
    job_id = _submit(slurm, tmp_path, f"echo gpus=$SLURM_JOB_GPUS visible=$CUDA_VISIBLE_DEVICES; {wait}", "--gres=gpu:2")

    running = slurm.wait_for_job(job_id, {"RUNNING"})
    _eventually(lambda: "\n" in _output(tmp_path, job_id), "the job's first line")
    gate.touch()

    # The allocation's detail line shows which GPUs; Slurm forgets it once the job ends.
    assert running["GRES"] == "gpu:2(IDX:0-1)"
    assert running["JOB_GRES"] == "gpu:2"
    assert _output(tmp_path, job_id) == "gpus=0,1 visible=0,1\n"
    assert slurm.wait_for_job(job_id, FINAL_STATES)["JobState"] == "COMPLETED"


@pytest.mark.parametrize(
    "request_form",
    [["--gres=gpu:1"], ["--gpus=1"], ["--gpus-per-node=1"], ["--gpus-per-task=1", "--ntasks=1"], ["--gres=gpu:1", "--cpus-per-gpu=1"]],
    ids=["gres", "gpus", "gpus-per-node", "gpus-per-task", "cpus-per-gpu"],
)
def test_every_form_of_asking_for_a_gpu_is_accepted(slurm: SlurmCluster, tmp_path: Path, request_form: list[str]) -> None:
    # SchedMD bug 15857: 22.05.8 rejected some GPU requests with "Requested node configuration is not available".
    job_id = _submit(slurm, tmp_path, "echo visible=$CUDA_VISIBLE_DEVICES", *request_form)

    fields = slurm.wait_for_job(job_id, FINAL_STATES)

    assert (fields["JobState"], fields["ExitCode"]) == ("COMPLETED", "0:0")
    assert _output(tmp_path, job_id) == "visible=0\n"


def test_a_job_waits_for_gpus_another_job_holds(slurm: SlurmCluster, tmp_path: Path) -> None:
    first_gate, first_wait = _gate(tmp_path, "first")
    second_gate, second_wait = _gate(tmp_path, "second")
    first = _submit(slurm, tmp_path, f"echo $CUDA_VISIBLE_DEVICES; {first_wait}", "--gres=gpu:3")
    slurm.wait_for_job(first, {"RUNNING"})
    second = _submit(slurm, tmp_path, f"echo $CUDA_VISIBLE_DEVICES; {second_wait}", "--gres=gpu:3")

    # The scheduler gives its reason once it has looked at the job, which takes a pass or two.
    _eventually(lambda: slurm.job(second)["Reason"] == "Resources", "the second job to wait for resources")
    assert slurm.job(second)["JobState"] == "PENDING"
    first_gate.touch()
    second_running = slurm.wait_for_job(second, {"RUNNING"})
    second_gate.touch()

    assert slurm.wait_for_job(first, FINAL_STATES)["JobState"] == "COMPLETED"
    assert second_running["GRES"] == "gpu:3(IDX:0-2)"
    assert slurm.wait_for_job(second, FINAL_STATES)["JobState"] == "COMPLETED"


def test_scancel_ends_a_running_job_and_its_processes(slurm: SlurmCluster, tmp_path: Path) -> None:
    _gate_file, wait = _gate(tmp_path, "never")
    job_id = _submit(slurm, tmp_path, f"echo $$; {wait}", "--gres=gpu:1")
    slurm.wait_for_job(job_id, {"RUNNING"})
    _eventually(lambda: "\n" in _output(tmp_path, job_id), "the job's pid")
    pid = int(_output(tmp_path, job_id))

    slurm.command("scancel", job_id)

    assert slurm.wait_for_job(job_id, FINAL_STATES)["JobState"] == "CANCELLED"
    _eventually(lambda: not _alive(pid), f"the job's shell (pid {pid}) to end")


def test_a_job_runs_a_container_on_the_docker_engine(slurm: SlurmCluster, toolkit_image: str, tmp_path: Path) -> None:
    job_id = _submit(slurm, tmp_path, f"docker run --rm {toolkit_image} echo hello from a container")

    fields = slurm.wait_for_job(job_id, FINAL_STATES, timeout=120)

    assert (fields["JobState"], fields["ExitCode"]) == ("COMPLETED", "0:0"), _output(tmp_path, job_id)
    assert _output(tmp_path, job_id) == "hello from a container\n"


def test_a_cluster_starts_again_in_the_directory_of_one_that_crashed(tmp_path: Path) -> None:
    crashed = SlurmCluster(tmp_path / "c", gpus=1).start()
    job_id = crashed.command("sbatch", "--parsable", "--output=/dev/null", "--wrap", "sleep 600").strip()
    crashed.wait_for_job(job_id, {"RUNNING"})
    for pid_file in ("run/slurmctld.pid", "run/slurmd.pid", "munge/munged.pid"):  # the daemons die; files, state and the job stay
        os.kill(int((tmp_path / "c" / pid_file).read_text()), signal.SIGKILL)

    again = SlurmCluster(tmp_path / "c", gpus=1, cpus=8).start()
    try:
        node = again.command("scontrol", "show", "node", again.node).split()
        jobs = again.command("squeue", "--noheader")
    finally:
        again.stop()
        crashed.stop()  # reaps the daemons it started

    assert "CPUTot=8" in node
    assert "Gres=gpu:1" in node
    assert jobs == ""  # a fresh controller: the crashed one's job is gone, and so is its process
    assert again.processes() == []


def _alive(pid: int) -> bool:
    """Whether the process runs; a zombie waiting for init to reap it has ended."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False

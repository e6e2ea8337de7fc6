"""`tao` against a daemon whose jobs run through Slurm (--backend slurm), on the real single-node cluster.

The same CLI, launcher config and exit codes as on Docker: the batch job runs the job's container
with docker on the node, and the daemon follows it through Slurm.
"""

from __future__ import annotations

import grp
import json
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tao_server.testing.daemon import Daemon
from tao_server.testing.slurm import SlurmCluster
from tests.integration.conftest import Gates, job_id_of, local_account, tao_as
from tests.slurm.conftest import containers_of, wait_until

HOSTILE_ARGV = ["a b", "", "$(touch /tmp/pwned)", "; rm -rf /", "'\"\\", "--", "ünïcødé", "*", "new\nline", "-e"]


def slurm_jobs(slurm: SlurmCluster) -> list[str]:
    return slurm.command("squeue", "--noheader", "--format=%i|%u|%T|%j").split()


def test_argv_reaches_the_task_through_slurm_byte_for_byte(on_slurm: Daemon) -> None:
    ran = on_slurm.tao("detectnet_v2", "argv", *HOSTILE_ARGV)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == b"".join(arg.encode() + b"\0" for arg in HOSTILE_ARGV)


@pytest.mark.parametrize("code", [0, 1, 3])
def test_the_task_s_exit_code_is_tao_s(on_slurm: Daemon, code: int) -> None:
    ran = on_slurm.tao("detectnet_v2", "exit", str(code))
    assert (ran.returncode, ran.stdout) == (code, f"exiting with {code}\n".encode())


def test_a_missing_entrypoint_is_127_and_says_so(on_slurm: Daemon) -> None:
    ran = on_slurm.tao("missing", "train")
    assert ran.returncode == 127
    assert b"'missing' does not exist in the image" in ran.stderr


def test_ctrl_c_leaves_no_container_and_no_slurm_job(on_slurm: Daemon, slurm: SlurmCluster) -> None:
    process = on_slurm.popen_tao(
        "unet", "run", "sh", "-c", "trap 'echo got SIGTERM; exit 143' TERM; echo ready; while true; do sleep 0.1; done"
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"
    [job] = on_slurm.request("GET", "/v1/jobs?status=running")["jobs"]
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert on_slurm.wait_for_status(job["id"], ("cancelled",), timeout=60)["status"] == "cancelled"
    wait_until(
        lambda: not slurm_jobs(slurm) or all("|COMPLETED|" not in j and "|RUNNING|" not in j for j in slurm_jobs(slurm)),
        "no Slurm job runs",
    )
    assert not any("RUNNING" in line or "PENDING" in line for line in slurm_jobs(slurm))
    wait_until(lambda: containers_of(job["id"]) == [], "the container is gone")


def test_a_job_waiting_for_gpus_shows_slurm_s_reason_then_runs(on_slurm: Daemon, slurm: SlurmCluster) -> None:
    gates = Gates(on_slurm.root / "gates")
    gates.root.chmod(0o755)
    show = "echo gpus=$NVIDIA_VISIBLE_DEVICES"
    first = job_id_of(
        on_slurm.tao("--mounts", str(gates.mounts), "--gpus", "3", "-d", "unet", "run", "sh", "-c", f"{show}; {gates.wait('go')}")
    )
    on_slurm.wait_for_output(first, b"gpus=")
    second = job_id_of(on_slurm.tao("--gpus", "3", "-d", "unet", "run", "sh", "-c", show))

    def pending() -> bool:
        listed = {job["id"]: job for job in json.loads(on_slurm.tao("list", "--json").stdout)}
        return listed.get(second, {}).get("condition") == "pending in Slurm: Resources"

    wait_until(pending, "the second job shows Slurm's pending reason")
    assert "queued (pending in Slurm: Resources)" in on_slurm.tao("list").stdout.decode()
    waiting = on_slurm.job(second)
    assert (waiting["status"], waiting["started_at"]) == ("queued", None) and waiting["container_id"]  # its Slurm job id
    gates.open("go")
    assert on_slurm.wait_for_status(second, ("succeeded",), timeout=120)["exit_code"] == 0
    firsts = on_slurm.tao("logs", first).stdout.decode().split("=")[1].strip().split(",")
    seconds = on_slurm.tao("logs", second).stdout.decode().split("=")[1].strip().split(",")
    assert len(firsts) == len(seconds) == 3  # Slurm's allocation, handed to the container


def test_a_killed_daemon_restarted_gives_the_whole_output_and_the_exit_code(on_slurm: Daemon) -> None:
    gates = Gates(on_slurm.root / "gates")
    gates.root.chmod(0o755)
    job_id = job_id_of(
        on_slurm.tao("--mounts", str(gates.mounts), "-d", "unet", "run", "sh", "-c", f"echo before; {gates.wait('go')}; echo after; exit 5")
    )
    on_slurm.wait_for_output(job_id, b"before")
    on_slurm.stop(signal.SIGKILL)
    gates.open("go")  # the job ends while no daemon watches it
    on_slurm.start()
    followed = on_slurm.tao("logs", "-f", job_id)
    assert (followed.returncode, followed.stdout) == (5, b"before\nafter\n")
    assert on_slurm.job(job_id)["exit_code"] == 5


def test_a_container_removed_behind_slurm_s_back_ends_the_job_with_a_true_state(on_slurm: Daemon) -> None:
    job_id = job_id_of(on_slurm.tao("-d", "unet", "run", "sh", "-c", "echo up; sleep 600"))
    on_slurm.wait_for_output(job_id, b"up")
    wait_until(lambda: containers_of(job_id) != [], "the container exists")
    subprocess.run(["docker", "rm", "-f", *containers_of(job_id)], check=True, capture_output=True)
    ended = on_slurm.wait_for_status(job_id, ("failed", "error", "cancelled"), timeout=120)
    assert ended["exit_code"] not in (None, 0)


def test_tao_info_shows_the_cluster(on_slurm: Daemon, slurm: SlurmCluster) -> None:
    shown = on_slurm.tao("info").stdout.decode()
    assert f"Slurm, partition {slurm.partition}, runtime docker, GPUs 4/4 free" in shown
    assert "jobs submitted as each job's owner (the daemon runs as root)" in shown


@pytest.fixture
def docker_user() -> Iterator[tuple[str, int, int]]:
    """A real account in the docker group, as users of the docker runtime must be on the nodes (root-equivalent there)."""
    account = local_account("tao-test-slurm")
    subprocess.run(["usermod", "-aG", "docker", account[0]], check=True)
    yield account
    subprocess.run(["gpasswd", "-d", account[0], "docker"], capture_output=True)


def test_a_job_is_submitted_as_its_caller_and_runs_as_them(on_slurm: Daemon, slurm: SlurmCluster, docker_user: Any) -> None:
    name, uid, _ = docker_user
    docker_gid = grp.getgrnam("docker").gr_gid
    started = tao_as(on_slurm, docker_user, "-d", "unet", "run", "sh", "-c", "id -u; sleep 600", groups=[docker_gid])
    assert started.returncode == 0, started.stderr
    job_id = job_id_of(started)
    on_slurm.wait_for_output(job_id, f"{uid}\n".encode())
    assert any(line.split("|")[1] == name for line in slurm_jobs(slurm) if job_id in line), slurm_jobs(slurm)
    assert tao_as(on_slurm, docker_user, "stop", job_id, groups=[docker_gid]).returncode == 0


def test_progress_follows_a_status_file_on_storage_the_nodes_share(on_slurm: Daemon) -> None:
    gates = Gates(on_slurm.root / "gates")
    gates.root.chmod(0o755)
    workspace = on_slurm.root / "workspace"  # on the shared dir's filesystem: what the node writes, the daemon sees
    workspace.mkdir(mode=0o777)
    config = {
        "Mounts": [{"source": str(workspace), "destination": "/workspace"}, {"source": str(gates.root), "destination": "/gates"}],
        "Envs": [{"variable": "TAO_SAMPLE_GATES", "value": "/gates"}],
    }
    mounts = on_slurm.root / "training.json"
    mounts.write_text(json.dumps(config))
    job_id = job_id_of(on_slurm.tao("--mounts", str(mounts), "-d", "detectnet_v2", "train", "-r", "/workspace/results"))
    gates.open("epoch-1")
    wait_until(lambda: (on_slurm.job(job_id).get("progress") or {}).get("epoch") == 1, "epoch 1 shown while the job runs", 120)
    # The status file and Slurm's own state are read by different pollers: the job may read "queued" a tick after
    # its first epoch shows. The gate holds it at epoch 1 until "running" is seen, so this cannot race the end.
    wait_until(lambda: on_slurm.job(job_id)["status"] == "running", "the job reads running, still at epoch 1", 120)
    assert on_slurm.job(job_id)["progress"]["epoch"] == 1
    gates.open("epoch-2")
    gates.open("epoch-3")
    wait_until(lambda: on_slurm.job(job_id)["status"] == "succeeded", "the job's end", 120)
    done = on_slurm.job(job_id)
    assert done["progress"]["epoch"] == 3 and done["progress"]["status"] == "SUCCESS" and done["progress_unavailable"] is None
    series = on_slurm.request("GET", f"/v1/jobs/{job_id}/metrics")["series"]
    assert [point["epoch"] for point in series["loss"]] == [1, 2, 3]


def test_a_pending_job_cancelled_with_scancel_ends_cancelled_and_tao_exits_non_zero(on_slurm: Daemon, slurm: SlurmCluster) -> None:
    gates = Gates(on_slurm.root / "gates")
    gates.root.chmod(0o755)
    holder = job_id_of(on_slurm.tao("--mounts", str(gates.mounts), "--gpus", "4", "-d", "unet", "run", "sh", "-c", gates.wait("go")))
    on_slurm.wait_for_status(holder, ("running",), timeout=120)
    waiting = on_slurm.popen_tao("--gpus", "4", "unet", "run", "echo", "never printed")
    wait_until(
        lambda: any(job["status"] == "queued" and job.get("condition") for job in _jobs(on_slurm) if job["id"] != holder), "a job pends"
    )
    [job] = [job for job in _jobs(on_slurm) if job["id"] != holder]
    slurm.command("scancel", job["container_id"])  # behind the daemon's back: an admin, say
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode not in (0, None) and out == b""
    assert b"was cancelled: cancelled in Slurm, outside the launcher" in err, err
    ended = on_slurm.job(job["id"])
    assert (ended["status"], ended["exit_code"], ended["started_at"]) == ("cancelled", None, None)
    assert f"Slurm job {job['container_id']} ended CANCELLED" in ended["error"]
    gates.open("go")
    assert on_slurm.wait_for_status(holder, ("succeeded",), timeout=120)["exit_code"] == 0


def test_tao_stop_takes_a_pending_job_out_of_slurms_queue(on_slurm: Daemon, slurm: SlurmCluster) -> None:
    gates = Gates(on_slurm.root / "gates")
    gates.root.chmod(0o755)
    holder = job_id_of(on_slurm.tao("--mounts", str(gates.mounts), "--gpus", "4", "-d", "unet", "run", "sh", "-c", gates.wait("go")))
    on_slurm.wait_for_status(holder, ("running",), timeout=120)
    pending = job_id_of(on_slurm.tao("--gpus", "4", "-d", "unet", "run", "echo", "never printed"))
    wait_until(lambda: on_slurm.job(pending).get("condition") is not None, "the job pends in Slurm")
    slurm_id = on_slurm.job(pending)["container_id"]
    stopped = on_slurm.tao("stop", pending)
    assert (stopped.returncode, stopped.stdout) == (0, f"{pending}: cancelled\n".encode()), stopped.stderr
    assert on_slurm.job(pending)["error"] is None  # its owner's own cancel: nothing to explain
    assert slurm.job(slurm_id)["JobState"] == "CANCELLED"  # out of Slurm's queue: it never runs later
    gates.open("go")
    assert on_slurm.wait_for_status(holder, ("succeeded",), timeout=120)["exit_code"] == 0
    assert on_slurm.tao("logs", pending).stdout == b""


def test_a_running_job_whose_node_fails_ends_an_error_and_leaves_no_container_once_the_node_is_back(
    on_slurm: Daemon, slurm: SlurmCluster
) -> None:
    running = on_slurm.popen_tao("unet", "run", "sh", "-c", "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.1; done")
    wait_until(lambda: _jobs(on_slurm) != [], "the job is submitted")
    [job] = _jobs(on_slurm)
    on_slurm.wait_for_output(job["id"], b"tick 2\n", timeout=120)
    wait_until(lambda: containers_of(job["id"]) != [], "the container runs")
    with slurm.node_failure():
        out, err = running.communicate(timeout=120)
        assert running.returncode == 125, err
        assert b"its node failed (Slurm job" in err and b"ended NODE_FAIL on node" in err
        ended = on_slurm.job(job["id"])
        assert (ended["status"], ended["exit_code"]) == ("error", 125)
        assert containers_of(job["id"]) != []  # cut off, it runs on while the node is down...
        shown = out  # all it printed up to the failure
        # ...and what it prints meanwhile reaches the job's log, after its end.
        wait_until(lambda: len(on_slurm.tao("logs", job["id"]).stdout) > len(shown), "output after the end reaches the log")
    wait_until(lambda: containers_of(job["id"]) == [], "no container is left once the node is back", timeout=120)
    logged = on_slurm.tao("logs", job["id"]).stdout
    assert logged.startswith(shown)
    ticks = logged.decode().splitlines()
    assert ticks == [f"tick {n}" for n in range(1, len(ticks) + 1)]  # nothing lost, nothing twice
    assert on_slurm.job(job["id"])["status"] == "error"


def _jobs(daemon: Daemon) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = json.loads(daemon.tao("list", "--all", "--json").stdout)
    return jobs


def test_a_sweep_of_four_trials_runs_each_trial_as_a_slurm_job(on_slurm: Daemon, slurm: SlurmCluster) -> None:
    from tests.integration.test_sweeps import objective, relay, sweep_yaml

    root = on_slurm.root / "sweep"  # on the shared dir's filesystem: the status files the nodes write, the daemon reads
    workspace = root / "workspace"
    workspace.mkdir(parents=True, mode=0o777)
    mounts = root / "mounts.json"
    mounts.write_text(json.dumps({"Mounts": [{"source": str(workspace), "destination": "/workspace"}]}))
    (root / "sweep.yaml").write_text(sweep_yaml("none", trials=4, parallel=2, epochs=2))
    started = on_slurm.tao("--mounts", str(mounts), "sweep", "run", "-d", str(root / "sweep.yaml"))
    assert started.returncode == 0, started.stderr
    sweep_id = started.stdout.decode().strip()
    with relay(on_slurm, sweep_id, workspace):
        wait_until(lambda: on_slurm.request("GET", f"/v1/sweeps/{sweep_id}")["state"] == "completed", "the sweep completes", 300)
    sweep = json.loads(on_slurm.tao("sweep", "show", "--json", sweep_id).stdout)
    assert [(trial["number"], trial["state"], trial["epochs"]) for trial in sweep["trials"]] == [(n, "complete", 2) for n in range(4)]
    for trial in sweep["trials"]:
        assert trial["value"] == pytest.approx(objective(**trial["params"]), abs=1e-5)  # the last epoch's KPI, read through Slurm
        job = on_slurm.job(trial["job"])
        assert (job["status"], job["sweep_id"], job["trial"], job["gpu_request"]) == ("succeeded", sweep_id, trial["number"], "count:1")
        assert slurm.job(job["container_id"])["JobState"] == "COMPLETED"  # it ran as a Slurm job
    assert sweep["best"]["value"] == max(trial["value"] for trial in sweep["trials"])
    assert sweep["gpu_seconds"] > 0  # Slurm hands out the GPUs: what each trial asked for is what it held
    listed = on_slurm.tao("list", "--all").stdout.decode()
    assert all(f"(sweep {sweep_id} #{n})" in listed for n in range(4)), listed

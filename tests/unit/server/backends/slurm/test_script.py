"""Batch scripts (backends/slurm/script.py): their #SBATCH lines, what each runtime refuses, and
what the script really runs, byte for byte: bash runs it with stand-ins for docker, srun,
apptainer and prlimit that record their argv and environment."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tao_server.backends.base import LaunchSpec, Mount
from tao_server.backends.container import LABEL_DAEMON, LABEL_JOB, ContainerRequest, docker_run
from tao_server.backends.slurm.script import BatchJob, SlurmOptions, directives, pyxis_image, pyxis_mount, render
from tao_server.backends.slurm.sweep import render_sweep
from tao_server.errors import LaunchFailure
from tests.unit.server.backends.test_container_request import HOSTILE_ARGV

DAEMON_ID = "0123456789abcdef0123456789abcdef"
HOSTILE_ENV = {
    "KEY": "v a l'\"$(touch /tmp/x)`id`\n\\ünï",
    "EMPTY": "",
    "PATH": "/weird path:$x",
    "LD_LIBRARY_PATH": "/usr/local/cuda/lib64",
}

# Records argv and environment, then acts as the runtime would: exits with STUB_EXIT, or waits
# for a signal (STUB_BLOCK) and dies of it; `docker stop` signals the waiting `docker run`.
STUB = """\
import json, os, signal, sys, time
name = os.path.basename(sys.argv[0])
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps({"argv": sys.argv, "env": dict(os.environ)}) + "\\n")
verb = sys.argv[1:3]
if name == "prlimit":
    os.execv(sys.argv[sys.argv.index("--") + 1], sys.argv[sys.argv.index("--") + 1:])
if name == "docker" and verb == ["container", "inspect"]:
    print("true" if os.path.exists(os.environ["STUB_PID"]) else "false")
elif name == "docker" and verb[0] == "stop":
    if os.path.exists(os.environ["STUB_PID"]):
        os.kill(int(open(os.environ["STUB_PID"]).read()), signal.SIGTERM)
elif name == "docker" and verb[0] in ("rm",):
    pass
elif name == "docker" and verb[0] == "ps":
    print(os.environ.get("STUB_PS", ""), end="")
else:
    if os.environ.get("STUB_BLOCK"):
        open(os.environ["STUB_PID"], "w").write(str(os.getpid()))
        time.sleep(60)
    sys.exit(int(os.environ.get("STUB_EXIT", "0")))
"""


def launch_spec(**overrides: Any) -> LaunchSpec:
    fields: dict[str, Any] = {
        "job_id": "alice.job-1",
        "image": "nvcr.io/nvidia/tao/tao-toolkit:5.0",
        "command": ["detectnet_v2", *HOSTILE_ARGV],
        "mounts": [Mount("/data/kitti", "/workspace/data", True)],
        "envs": dict(HOSTILE_ENV),
        "options": {"shm_size": 67108864, "user": "1000:1000"},
    }
    return LaunchSpec(**{**fields, **overrides})


def batch_job(runtime: str = "docker", **overrides: Any) -> BatchJob:
    return BatchJob(DAEMON_ID, "alice.job-1", "/shared/tao", runtime=runtime, runs_as=(1000, 1000), **overrides)


def request_for(job: BatchJob, launch: LaunchSpec | None = None) -> ContainerRequest:
    return ContainerRequest.from_spec(launch or launch_spec(), name=job.name, labels={LABEL_DAEMON: DAEMON_ID, LABEL_JOB: job.job_id})


def test_the_sbatch_lines_name_the_job_ask_for_its_resources_and_end_with_the_daemons_defaults() -> None:
    job = batch_job()
    request = request_for(job, launch_spec(options={"mem_limit": 1073741825, "cpus": 1.5}))
    slurm = SlurmOptions(partition="gpu", gpus=2, nodes=1, time_limit="1-00:00:00", extra_args=("--account=ml", "--qos=high"))
    assert directives(request, job, slurm) == [
        "#SBATCH --job-name=tao-01234567-alice.job-1",
        f"#SBATCH --comment=tao-launcher:daemon={DAEMON_ID}:job=alice.job-1",
        "#SBATCH --output=/shared/tao/tao-01234567-alice.job-1.slurm",
        "#SBATCH --chdir=/shared/tao",
        "#SBATCH --open-mode=append",
        "#SBATCH --no-requeue",
        "#SBATCH --export=ALL",
        "#SBATCH --nodes=1",
        "#SBATCH --partition=gpu",
        "#SBATCH --gres=gpu:2",
        "#SBATCH --time=1-00:00:00",
        "#SBATCH --mem=1048577K",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --account=ml",
        "#SBATCH --qos=high",
    ]


@pytest.mark.parametrize("bad", ["--account=my lab", '--comment="x"', "--output=/a/%j", "--x=#y", "--x=a\\b"])
def test_an_sbatch_argument_that_sbatch_would_reread_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="cannot go on an #SBATCH line"):
        directives(request_for(batch_job()), batch_job(), SlurmOptions(extra_args=(bad,)))


@pytest.mark.parametrize("limit", ["60", "1:30", "2:00:00", "1-0", "1-00:00:00", "UNLIMITED"])
def test_time_limits_in_sbatchs_own_forms_are_kept(limit: str) -> None:
    assert f"#SBATCH --time={limit}" in directives(request_for(batch_job()), batch_job(), SlurmOptions(time_limit=limit))


def test_dependencies_are_held_by_slurm_which_kills_a_job_whose_dependency_failed() -> None:
    slurm = SlurmOptions(after_ok=("12", "13"), after_any=("14",), extra_args=("--account=ml",))
    lines = directives(request_for(batch_job()), batch_job(), slurm)
    assert lines[-3:] == ["#SBATCH --dependency=afterok:12:13,afterany:14", "#SBATCH --kill-on-invalid-dep=yes", "#SBATCH --account=ml"]
    assert not any("dependency" in line for line in directives(request_for(batch_job()), batch_job(), SlurmOptions()))


def test_a_dependency_that_is_not_a_slurm_job_id_is_refused() -> None:
    with pytest.raises(ValueError, match="not a Slurm job id"):
        directives(request_for(batch_job()), batch_job(), SlurmOptions(after_ok=("12,afterany:1",)))


def test_a_time_limit_sbatch_would_not_read_is_refused() -> None:
    with pytest.raises(ValueError, match="time limit"):
        directives(request_for(batch_job()), batch_job(), SlurmOptions(time_limit="1 hour"))


def test_gpus_come_from_the_allocation_not_from_the_request() -> None:
    job = batch_job()
    with pytest.raises(ValueError, match="allocation"):
        render(request_for(job, launch_spec(devices=["0"])), job, SlurmOptions(gpus=1))


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("ports", {"8888/tcp": ["127.0.0.1", 8888]}),
        ("network", "bridge"),
        ("ipc", "private"),
        ("privileged", True),
        ("cap_add", ["SYS_ADMIN"]),
        ("devices", ["/dev/fuse"]),
        ("user", "0"),
        ("user", "1000:0"),
        ("security_opt", ["seccomp=unconfined"]),
        ("tty", True),
    ],
)
@pytest.mark.parametrize("runtime", ["pyxis", "apptainer"])
def test_an_option_the_runtime_cannot_honour_is_refused_naming_it(runtime: str, option: str, value: Any) -> None:
    job = batch_job(runtime)
    with pytest.raises(LaunchFailure, match=f"^DockerOptions.{option}: {runtime} on a Slurm node cannot honour it") as caught:
        render(request_for(job, launch_spec(options={option: value})), job, SlurmOptions())
    assert caught.value.field == f"DockerOptions.{option}" and caught.value.exit_code == 125


@pytest.mark.parametrize("runtime", ["pyxis", "apptainer"])
def test_what_the_node_gives_anyway_is_accepted(runtime: str) -> None:
    options = {
        "user": "1000",
        "group_add": ["27"],
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "network": "host",
        "ipc": "host",
        "shm_size": 1 << 34,
        "privileged": False,
    }
    job = batch_job(runtime)
    assert render(request_for(job, launch_spec(options=options)), job, SlurmOptions()).startswith("#!/bin/bash\n")


def test_ulimits_are_refused_under_pyxis_and_set_with_prlimit_under_apptainer() -> None:
    launch = launch_spec(
        options={"ulimits": [{"name": "memlock", "soft": -1, "hard": -1}, {"name": "stack", "soft": 8388608, "hard": 67108864}]}
    )
    with pytest.raises(LaunchFailure, match=r"DockerOptions\.ulimits: pyxis"):
        render(request_for(batch_job("pyxis"), launch), batch_job("pyxis"), SlurmOptions())
    script = render(request_for(batch_job("apptainer"), launch), batch_job("apptainer"), SlurmOptions())
    assert '"$prlimit"\n  --memlock=unlimited:unlimited\n  --stack=8388608:67108864\n  --\n  "$apptainer"' in script


@pytest.mark.parametrize(
    ("runtime", "name"), [("pyxis", "SLURM_JOB_ID"), ("pyxis", "ENROOT_ROOTFS"), ("apptainer", "HOME"), ("apptainer", "APPTAINER_BIND")]
)
def test_a_variable_the_runtime_keeps_for_itself_is_refused(runtime: str, name: str) -> None:
    job = batch_job(runtime)
    with pytest.raises(LaunchFailure, match=f"Envs: {name} cannot be set"):
        render(request_for(job, launch_spec(envs={name: "x"})), job, SlurmOptions())


@pytest.mark.parametrize(
    ("image", "enroot"),
    [
        ("nvcr.io/nvidia/tao/tao-toolkit:5.0", "nvcr.io#nvidia/tao/tao-toolkit:5.0"),
        ("localhost:5000/tao:1", "localhost:5000#tao:1"),
        ("ubuntu:22.04", "ubuntu:22.04"),
        ("library/ubuntu", "library/ubuntu"),
    ],
)
def test_a_docker_reference_becomes_enroots(image: str, enroot: str) -> None:
    assert pyxis_image(image) == enroot


def test_an_image_by_digest_is_refused_under_pyxis() -> None:
    with pytest.raises(LaunchFailure, match="no digest form"):
        pyxis_image("nvcr.io/nvidia/tao@sha256:" + "0" * 64)


@pytest.mark.parametrize("path", ["/data/a,b", "/data/a:b", "/data/a b", "/data/a\nb"])
def test_a_mount_pyxis_cannot_say_is_refused(path: str) -> None:
    with pytest.raises(LaunchFailure, match="--container-mounts cannot carry"):
        pyxis_mount(Mount(path, "/x"))
    assert pyxis_mount(Mount("/data/a", "/x", True)) == "/data/a:/x:ro"


# --- what the script runs ---------------------------------------------------------------------


@pytest.fixture
def node(tmp_path: Path) -> dict[str, Any]:
    """A stand-in node: stub runtimes first on PATH, a shared dir, and the log the stubs write."""
    bin_dir, shared = tmp_path / "bin", tmp_path / "shared"
    bin_dir.mkdir()
    shared.mkdir()
    stub = bin_dir / "stub.py"
    stub.write_text(f"#!{sys.executable}\n{STUB}")
    stub.chmod(0o755)
    for name in ("docker", "srun", "apptainer", "prlimit"):
        (bin_dir / name).symlink_to(stub)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "STUB_LOG": str(tmp_path / "calls.jsonl"),
        "STUB_PID": str(tmp_path / "run.pid"),
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_GPUS": "1,3",
        "CUDA_VISIBLE_DEVICES": "0,1",
    }
    return {"bin": bin_dir, "shared": shared, "env": env, "log": tmp_path / "calls.jsonl"}


def script_for(node: dict[str, Any], runtime: str, **job: Any) -> tuple[BatchJob, ContainerRequest, Path]:
    batch = BatchJob(DAEMON_ID, "alice.job-1", str(node["shared"]), runtime=runtime, runs_as=(1000, 1000), **job)
    request = request_for(batch)
    path = node["shared"] / f"{batch.name}.sbatch"
    path.write_text(render(request, batch, SlurmOptions(gpus=2)))
    return batch, request, path


def run_script(node: dict[str, Any], script: Path, **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["bash", str(script)], env={**node["env"], **env}, capture_output=True, timeout=30, check=False)


def calls(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in node["log"].read_text().splitlines()]


def task_output(node: dict[str, Any], batch: BatchJob) -> bytes:
    """What the script wrote where the task's output goes (not its own stdout: it redirects itself)."""
    return (node["shared"] / f"{batch.name}.out").read_bytes()


def exit_file(node: dict[str, Any], batch: BatchJob) -> str:
    return (node["shared"] / f"{batch.name}.exit").read_text()


def test_the_docker_script_runs_exactly_the_docker_run_the_request_renders(node: dict[str, Any]) -> None:
    batch, request, script = script_for(node, "docker")
    done = run_script(node, script, STUB_EXIT="7")
    assert done.returncode == 7, done.stderr
    assert exit_file(node, batch) == "7\n"
    run = docker_run(request, "request", remove=True)
    called = calls(node)[0]
    assert called["argv"] == [
        str(node["bin"] / "docker"),
        "run",
        *run.options,
        "--label",
        "org.tao-launcher.slurm-job=4242",
        "--gpus",
        '"device=1,3"',
        *run.target,
    ]
    assert run.target[-len(HOSTILE_ARGV) :] == tuple(HOSTILE_ARGV)
    assert {name: called["env"].get(name) for name in run.env} == {"KEY": HOSTILE_ENV["KEY"], "EMPTY": "", "NVIDIA_VISIBLE_DEVICES": "1,3"}
    assert called["env"]["PATH"] == node["env"]["PATH"]  # the job's PATH went to the container, not to the CLI
    assert "PATH=/weird path:$x" in called["argv"]


def test_in_env_mode_the_docker_script_hands_the_allocation_over_in_the_variable_alone(node: dict[str, Any]) -> None:
    _, _, script = script_for(node, "docker", gpu_mode="env")
    assert run_script(node, script).returncode == 0
    called = calls(node)[0]
    assert "--gpus" not in called["argv"] and called["env"]["NVIDIA_VISIBLE_DEVICES"] == "1,3"


def test_a_job_that_asked_for_gpus_and_was_given_none_fails_with_125(node: dict[str, Any]) -> None:
    batch, _, script = script_for(node, "docker")
    done = run_script(node, script, SLURM_JOB_GPUS="", CUDA_VISIBLE_DEVICES="")
    assert done.returncode == 125 and b"Slurm named no GPUs" in task_output(node, batch)
    assert exit_file(node, batch) == "125\n" and not node["log"].exists()


def test_the_pyxis_script_runs_srun_with_the_request_and_its_environment(node: dict[str, Any]) -> None:
    batch, request, script = script_for(node, "pyxis")
    done = run_script(node, script, STUB_EXIT="3")
    assert done.returncode == 3 and exit_file(node, batch) == "3\n"
    called = calls(node)[0]
    assert called["argv"] == [
        str(node["bin"] / "srun"),
        "--export=ALL",
        "--container-image=nvcr.io#nvidia/tao/tao-toolkit:5.0",
        "--no-container-mount-home",
        "--no-container-remap-root",
        "--container-mounts=/data/kitti:/workspace/data:ro",
        "--container-env=KEY,EMPTY,PATH,LD_LIBRARY_PATH,NVIDIA_VISIBLE_DEVICES",
        *request.command,
    ]
    assert {name: called["env"][name] for name in HOSTILE_ENV} == HOSTILE_ENV
    assert called["env"]["NVIDIA_VISIBLE_DEVICES"] == "1,3"


def test_the_apptainer_script_runs_apptainer_exec_with_the_request_and_its_environment(node: dict[str, Any]) -> None:
    batch, request, script = script_for(node, "apptainer")
    done = run_script(node, script)
    assert done.returncode == 0 and exit_file(node, batch) == "0\n"
    called = calls(node)[0]
    assert called["argv"] == [
        str(node["bin"] / "apptainer"),
        "exec",
        "--cleanenv",
        "--no-home",
        "--nv",
        "--mount",
        "type=bind,source=/data/kitti,target=/workspace/data,readonly",
        "docker://nvcr.io/nvidia/tao/tao-toolkit:5.0",
        *request.command,
    ]
    given = {name.removeprefix("APPTAINERENV_"): value for name, value in called["env"].items() if name.startswith("APPTAINERENV_")}
    assert given == {**HOSTILE_ENV, "NVIDIA_VISIBLE_DEVICES": "1,3", "CUDA_VISIBLE_DEVICES": "0,1"}


def stop_while_running(node: dict[str, Any], script: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(["bash", str(script)], env={**node["env"], "STUB_BLOCK": "1"}, stderr=subprocess.PIPE)
    pid_file = Path(node["env"]["STUB_PID"])
    deadline = time.monotonic() + 20
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the runtime never started"
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)  # what scancel --batch --signal=TERM sends the script
    process.wait(timeout=20)
    return process


def test_term_stops_a_running_container_once_with_docker_stop_and_records_its_end(node: dict[str, Any]) -> None:
    batch, _, script = script_for(node, "docker", stop_timeout=2.5)
    process = stop_while_running(node, script)
    assert process.returncode == 128 + signal.SIGTERM
    assert exit_file(node, batch) == "143\n"
    assert (node["shared"] / f"{batch.name}.signalled").exists()  # a signal, not the task, ended it: the daemon asks Slurm why
    verbs = [call["argv"][1:3] for call in calls(node)]
    assert ["stop", "-t"] in verbs and calls(node)[verbs.index(["stop", "-t"])]["argv"][3:] == ["3", batch.name]
    assert verbs[-1] == ["rm", "-f"]  # and whatever is left of it goes


@pytest.mark.parametrize("runtime", ["pyxis", "apptainer"])
def test_term_is_passed_on_to_srun_or_apptainer_and_their_end_recorded(node: dict[str, Any], runtime: str) -> None:
    batch, _, script = script_for(node, runtime)
    process = stop_while_running(node, script)
    assert process.returncode == 143 and exit_file(node, batch) == "143\n"


def test_the_exit_file_is_moved_into_place_leaving_no_temporary_file(node: dict[str, Any]) -> None:
    batch, _, script = script_for(node, "docker")
    run_script(node, script, STUB_EXIT="0")
    assert sorted(p.name for p in node["shared"].iterdir()) == [f"{batch.name}.exit", f"{batch.name}.out", f"{batch.name}.sbatch"]


def test_a_missing_runtime_fails_the_job_with_125_saying_so(node: dict[str, Any]) -> None:
    batch, _, script = script_for(node, "apptainer")
    os.remove(node["bin"] / "apptainer")
    done = run_script(node, script)
    assert done.returncode == 125 and b"apptainer is not installed" in task_output(node, batch)


def test_the_same_request_under_each_runtime_differs_only_in_how_it_is_run() -> None:
    scripts = {
        runtime: render(request_for(batch_job(runtime)), batch_job(runtime), SlurmOptions()) for runtime in ("docker", "pyxis", "apptainer")
    }
    heads = {runtime: script.split("# tao-launcher job")[0] for runtime, script in scripts.items()}
    assert heads["docker"] == heads["pyxis"] == heads["apptainer"]
    assert dataclasses.replace(batch_job(), runtime="pyxis").name == batch_job().name


def test_a_two_node_job_asks_slurm_for_both_and_pyxis_starts_the_task_through_srun_on_each() -> None:
    # Not run live (one node here): the rendered script is what a two-node cluster would get.
    job = batch_job("pyxis")
    script = render(request_for(job, launch_spec(options={"user": "1000:1000"})), job, SlurmOptions(nodes=2, gpus=1))
    assert "#SBATCH --nodes=2" in script.splitlines()
    assert "#SBATCH --gres=gpu:1" in script.splitlines()  # per node, as gres counts
    lines = script.splitlines()
    # srun in the allocation starts one task per node, each in the container.
    assert lines[lines.index("run=(") + 1] == '  "$srun"'
    assert "  '--container-image=nvcr.io#nvidia/tao/tao-toolkit:5.0'" in lines


# --- the sweep after a node failure -------------------------------------------------------------


def test_the_sweep_of_a_failed_node_stops_and_removes_what_is_left_of_that_job_there(node: dict[str, Any]) -> None:
    batch = BatchJob(DAEMON_ID, "alice.job-1", str(node["shared"]), runtime="docker", stop_timeout=2.5)
    script = node["shared"] / "sweep.sbatch"
    text = render_sweep(batch, "4242", "gpu-node01", "gpu", ("--account=ml",))
    script.write_text(text)
    done = run_script(node, script, STUB_PS="c0ffee\nbeef\n")
    assert done.returncode == 0, done.stderr
    slurm_job = ["--filter", f"label={LABEL_DAEMON}={DAEMON_ID}", "--filter", "label=org.tao-launcher.slurm-job=4242"]
    assert [call["argv"][1:] for call in calls(node)] == [
        ["ps", "-aq", *slurm_job],
        ["stop", "-t", "3", "c0ffee", "beef"],  # as a cancel would: TERM, then KILL after the stop timeout
        ["rm", "-f", "c0ffee", "beef"],
    ]
    assert done.stdout.startswith(b"tao: swept 2 container(s) of Slurm job 4242 from ")  # into the sweep's output, under sbatch
    lines = text.splitlines()
    assert "#SBATCH --nodelist=gpu-node01" in lines and "#SBATCH --partition=gpu" in lines
    assert lines.index("#SBATCH --account=ml") > lines.index("#SBATCH --partition=gpu")  # the daemon's sbatch arguments last
    assert f"#SBATCH --job-name={batch.name}-sweep" in lines  # never taken for the job itself on adoption


def test_a_sweep_finding_nothing_does_nothing(node: dict[str, Any]) -> None:
    batch = BatchJob(DAEMON_ID, "alice.job-1", str(node["shared"]), runtime="docker")
    script = node["shared"] / "sweep.sbatch"
    script.write_text(render_sweep(batch, "4242", "gpu-node01", None))
    assert run_script(node, script).returncode == 0
    assert [call["argv"][1] for call in calls(node)] == ["ps"]


def test_under_pyxis_the_sweep_only_marks_the_nodes_return() -> None:
    text = render_sweep(batch_job("pyxis"), "4242", "gpu-node01", None)
    assert "docker" not in text and "#SBATCH --nodelist=gpu-node01" in text.splitlines()

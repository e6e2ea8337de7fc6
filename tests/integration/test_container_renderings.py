"""The one container request on the real engine: the Docker backend's API arguments and the
`docker run` command line make the same container, and a docker-runtime batch script, run by
bash as slurmd would run it, hands the task its argv, environment and mounts byte for byte and
stops it on TERM. No Slurm is needed: the script only reads SLURM_JOB_ID and the GPUs from its
environment."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tao_server.backends.base import LaunchSpec, Mount
from tao_server.backends.container import LABEL_DAEMON, LABEL_JOB, ContainerRequest, docker_run
from tao_server.backends.docker.docker_backend import create_arguments
from tao_server.backends.slurm.script import BatchJob, SlurmOptions, render
from tests.unit.server.backends.test_container_request import HOSTILE_ARGV

HOSTILE_DIRS = ["plain", "a,b", 'say "hi"', "line\nbreak", " lead and trail ", "ünïcødé ✓", "=eq=ual"]
HOSTILE_ENV = {"KEY": "v a l'\"$(touch /tmp/x)`id`\n\\ünï,=", "EMPTY": "", "PATH": "/bin:/weird dir:$x", "LD_PRELOAD": ""}
COMPARED = {
    "Config": ["Cmd", "Image", "User", "Tty", "Labels"],
    "HostConfig": [
        "Mounts", "ShmSize", "Ulimits", "PortBindings", "Privileged", "IpcMode", "CapAdd", "CapDrop", "GroupAdd",
        "SecurityOpt", "Memory", "NanoCpus", "DeviceRequests", "Init",
    ],
}  # fmt: skip


@pytest.fixture
def sources(tmp_path: Path) -> list[Path]:
    made = []
    for index, name in enumerate(HOSTILE_DIRS):
        path = tmp_path / "in" / name
        path.mkdir(parents=True)
        (path / "file").write_text(f"mount {index}\n")
        made.append(path)
    return made


@pytest.fixture
def containers(docker_client: Any) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def full_spec(image: str, sources: list[Path], **overrides: Any) -> LaunchSpec:
    fields: dict[str, Any] = {
        "job_id": uuid.uuid4().hex[:10],
        "image": image,
        "command": ["detectnet_v2", *HOSTILE_ARGV],
        "mounts": [Mount(str(source), f"/in/{source.name}", index % 2 == 0) for index, source in enumerate(sources)],
        "envs": dict(HOSTILE_ENV),
        "options": {
            "shm_size": 134217728,
            "ulimits": [{"name": "nofile", "soft": 1024, "hard": 4096}],
            "user": f"{os.getuid()}:{os.getgid()}",
            "group_add": ["27", "100"],
            "ports": {"8888/tcp": ["127.0.0.1", 18888], "53/udp": ["::1", None]},
            "ipc": "shareable",
            "cap_add": ["SYS_PTRACE"],
            "cap_drop": ["MKNOD"],
            "security_opt": ["no-new-privileges:true"],
            "mem_limit": 268435456,
            "cpus": 1.001,
            "tty": True,
        },
        "devices": ["0", "1"],
    }
    return LaunchSpec(**{**fields, **overrides})


def request_of(launch: LaunchSpec, name: str) -> ContainerRequest:
    return ContainerRequest.from_spec(launch, name=name, labels={LABEL_DAEMON: "renderings", LABEL_JOB: launch.job_id})


def inspected(docker_client: Any, name: str) -> dict[str, Any]:
    found = docker_client.api.inspect_container(name)
    view = {f"{part}.{key}": found[part].get(key) for part, keys in COMPARED.items() for key in keys}
    image_env = set(docker_client.api.inspect_image(found["Image"])["Config"].get("Env") or [])
    view["Config.Env"] = sorted(set(found["Config"]["Env"]) - image_env)
    for key in ("HostConfig.CapAdd", "HostConfig.CapDrop"):  # the CLI spells them CAP_X; the engine reads both alike
        view[key] = [name if name.startswith("CAP_") else f"CAP_{name}" for name in view[key] or []]
    return view


@pytest.mark.parametrize("gpu_mode", ["request", "env"])
def test_the_api_and_the_command_line_make_the_same_container(
    docker_client: Any, toolkit_image: str, sources: list[Path], containers: list[str], gpu_mode: str
) -> None:
    launch = full_spec(toolkit_image, sources)
    by_api, by_cli = f"tao-api-{launch.job_id}", f"tao-cli-{launch.job_id}"
    containers += [by_api, by_cli]
    docker_client.api.create_container(**create_arguments(docker_client.api, request_of(launch, by_api), gpu_mode))
    run = docker_run(request_of(launch, by_cli), gpu_mode)
    argv = ["docker", "create", *run.argv[2:]]  # the same options: create is run without the start
    subprocess.run(argv, env={**os.environ, **run.env}, check=True, capture_output=True)
    api_view, cli_view = inspected(docker_client, by_api), inspected(docker_client, by_cli)
    assert api_view == cli_view
    assert api_view["Config.Cmd"] == ["detectnet_v2", *HOSTILE_ARGV]
    assert [m["Source"] for m in api_view["HostConfig.Mounts"]] == [str(s) for s in sources]
    assert sorted(api_view["Config.Env"]) == sorted([f"{k}={v}" for k, v in HOSTILE_ENV.items()] + ["NVIDIA_VISIBLE_DEVICES=0,1"])


def batch_script(tmp_path: Path, request: ContainerRequest, job: BatchJob) -> Path:
    script = tmp_path / f"{job.name}.sbatch"
    script.write_text(render(request, job, SlurmOptions()))
    return script


def test_a_docker_batch_script_hands_the_task_its_argv_environment_and_mounts_byte_for_byte(
    docker_client: Any, toolkit_image: str, sources: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    dump = (
        'printf "%s\\0" "$@" > /out/argv; cat /proc/self/environ > /out/env; for d in /in/*; do cat "$d/file"; done > /out/mounted; exit 3'
    )
    launch = full_spec(
        toolkit_image,
        sources,
        command=["sh", "-c", dump, "sh", *HOSTILE_ARGV],
        mounts=[*full_spec(toolkit_image, sources).mounts, Mount(str(out), "/out")],
        options={"user": f"{os.getuid()}:{os.getgid()}", "shm_size": 67108864},
        devices=[],
    )
    job = BatchJob("renderings" + "0" * 22, launch.job_id, str(tmp_path), gpu_mode="env")
    script = batch_script(tmp_path, request_of(launch, job.name), job)
    done = subprocess.run(["bash", str(script)], env={"PATH": os.environ["PATH"], "SLURM_JOB_ID": "4242"}, capture_output=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert (tmp_path / f"{job.name}.exit").read_text() == "3\n"
    assert (out / "argv").read_bytes() == b"".join(arg.encode() + b"\0" for arg in HOSTILE_ARGV)
    environ = (out / "env").read_bytes().split(b"\0")
    for name, value in {**HOSTILE_ENV, "NVIDIA_VISIBLE_DEVICES": "void"}.items():
        assert f"{name}={value}".encode() in environ
    assert (out / "mounted").read_text() == "".join(f"mount {i}\n" for i in sorted(range(len(sources)), key=lambda i: HOSTILE_DIRS[i]))
    assert not docker_client.api.containers(all=True, filters={"name": job.name})  # --rm


def test_term_to_a_docker_batch_script_stops_its_container_and_records_the_end(
    docker_client: Any, toolkit_image: str, tmp_path: Path
) -> None:
    launch = LaunchSpec(job_id=uuid.uuid4().hex[:10], image=toolkit_image, command=["sleep", "300"])
    job = BatchJob("renderings" + "0" * 22, launch.job_id, str(tmp_path), stop_timeout=5)
    script = batch_script(tmp_path, request_of(launch, job.name), job)
    process = subprocess.Popen(["bash", str(script)], env={"PATH": os.environ["PATH"], "SLURM_JOB_ID": "4243"}, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not docker_client.api.containers(filters={"name": job.name, "status": "running"}):
            assert time.monotonic() < deadline and process.poll() is None, "the container never ran"
            time.sleep(0.1)
        labels = docker_client.api.containers(filters={"name": job.name})[0]["Labels"]
        assert labels["org.tao-launcher.slurm-job"] == "4243" and labels[LABEL_JOB] == launch.job_id
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        process.kill()
        subprocess.run(["docker", "rm", "-f", job.name], capture_output=True)
    assert (tmp_path / f"{job.name}.exit").read_text() == "143\n"
    assert not docker_client.api.containers(all=True, filters={"name": job.name})

"""One container request, two renderings (backends/container.py, backends/docker/docker_backend.py):
the engine's API arguments the Docker backend passes, and a `docker run` command line, byte for byte."""

from __future__ import annotations

import csv
from decimal import Decimal
from typing import Any

import docker
import pytest

from tao_server.backends.base import LaunchSpec, Mount
from tao_server.backends.container import (
    LABEL_DAEMON,
    LABEL_JOB,
    ContainerRequest,
    PublishedPort,
    decimal_cpus,
    docker_run,
    mount_spec,
    publish_spec,
)
from tao_server.backends.docker.docker_backend import create_arguments
from tao_server.errors import LaunchFailure

HOSTILE_ARGV = [
    "-e",
    "--flag=x",
    "a b",
    "it's",
    'say "hi"',
    "$(touch /tmp/pwned)",
    "`id`",
    "$HOME",
    "line1\nline2",
    "tab\there",
    "ünïcødé ✓ 日本",
    "",
    "*",
    "back\\slash",
    "semi;colon && rm -rf /",
    "cr\r",
]
FULL_OPTIONS: dict[str, Any] = {
    "shm_size": 17179869184,
    "ulimits": [{"name": "memlock", "soft": -1, "hard": -1}, {"name": "nofile", "soft": 1024, "hard": 4096}],
    "user": "1000:1000",
    "group_add": ["27", "100"],
    "ports": {"8888/tcp": ["127.0.0.1", 8888], "53/udp": ["::1", None]},
    "privileged": True,
    "network": "bridge",
    "ipc": "shareable",
    "cap_add": ["SYS_PTRACE"],
    "cap_drop": ["ALL"],
    "devices": ["/dev/fuse"],
    "security_opt": ["no-new-privileges:true"],
    "mem_limit": 1073741824,
    "cpus": 1.5,
    "tty": True,
}


def spec(**overrides: Any) -> LaunchSpec:
    fields: dict[str, Any] = {
        "job_id": "job1",
        "image": "nvcr.io/nvidia/tao/tao-toolkit:5.0",
        "command": ["detectnet_v2", "train", "-e", "/specs/train.txt"],
        "mounts": [Mount("/data/kitti", "/workspace/data", True), Mount("/home/me/results", "/workspace/results")],
        "envs": {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"},
        "options": {"shm_size": 67108864},
        "devices": ["0", "2"],
    }
    return LaunchSpec(**{**fields, **overrides})


def request_of(launch: LaunchSpec) -> ContainerRequest:
    return ContainerRequest.from_spec(launch, name=f"tao-{launch.job_id}", labels={LABEL_DAEMON: "d" * 32, LABEL_JOB: launch.job_id})


def api() -> docker.APIClient:
    return docker.APIClient(base_url="unix:///nonexistent/docker.sock", version="1.41")  # never connects


def test_every_option_is_normalised_once_from_the_launch_spec() -> None:
    request = request_of(spec(options=FULL_OPTIONS))
    assert request.ulimits[0].name == "memlock" and request.ulimits[0].soft == -1
    assert request.ports == (PublishedPort("8888/tcp", "127.0.0.1", 8888), PublishedPort("53/udp", "::1", None))
    assert request.nano_cpus == 1_500_000_000
    assert request.group_add == ("27", "100") and request.cap_drop == ("ALL",)
    assert request.environment == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "NVIDIA_VISIBLE_DEVICES": "0,2"}


def test_an_option_the_job_did_not_set_stays_unset_not_empty() -> None:
    request = request_of(spec())
    assert request.security_opt is None and request.cap_add is None and request.user is None
    assert request_of(spec(options={"security_opt": []})).security_opt == ()


def test_a_job_without_gpus_is_shown_none_rather_than_all() -> None:
    assert request_of(spec(devices=[])).environment["NVIDIA_VISIBLE_DEVICES"] == "void"


def test_the_api_rendering_is_what_the_docker_backend_gives_the_engine() -> None:
    arguments = create_arguments(api(), request_of(spec(options=FULL_OPTIONS)), "request")
    host_config = arguments.pop("host_config")
    assert arguments == {
        "image": "nvcr.io/nvidia/tao/tao-toolkit:5.0",
        "command": ["detectnet_v2", "train", "-e", "/specs/train.txt"],
        "environment": {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "NVIDIA_VISIBLE_DEVICES": "0,2"},
        "user": "1000:1000",
        "tty": True,
        "ports": [8888, (53, "udp")],
        "labels": {LABEL_DAEMON: "d" * 32, LABEL_JOB: "job1"},
        "name": "tao-job1",
        "stdin_open": False,
        "detach": False,
    }
    assert host_config["Mounts"][0] == {"Target": "/workspace/data", "Source": "/data/kitti", "Type": "bind", "ReadOnly": True}
    assert host_config["PortBindings"] == {
        "8888/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8888"}],
        "53/udp": [{"HostIp": "::1", "HostPort": ""}],
    }
    assert host_config["Ulimits"] == [{"Name": "memlock", "Soft": -1, "Hard": -1}, {"Name": "nofile", "Soft": 1024, "Hard": 4096}]
    assert host_config["NanoCpus"] == 1_500_000_000 and host_config["Memory"] == 1073741824 and host_config["ShmSize"] == 17179869184
    assert host_config["DeviceRequests"] == [{"Driver": "", "Count": 0, "DeviceIDs": ["0", "2"], "Capabilities": [["gpu"]], "Options": {}}]
    assert (
        host_config["Init"] is True
        and host_config["GroupAdd"] == ["27", "100"]
        and host_config["SecurityOpt"] == ["no-new-privileges:true"]
    )


def test_the_api_rendering_in_env_mode_asks_for_no_device() -> None:
    host_config = create_arguments(api(), request_of(spec()), "env")["host_config"]
    assert "DeviceRequests" not in host_config


def test_the_command_line_rendering_of_a_full_request() -> None:
    run = docker_run(request_of(spec(options=FULL_OPTIONS)), "request", remove=True)
    assert run.argv == [
        "docker", "run", "--init", "--rm", "--name", "tao-job1",
        "--label", f"{LABEL_DAEMON}={'d' * 32}", "--label", f"{LABEL_JOB}=job1",
        "--mount", "type=bind,source=/data/kitti,target=/workspace/data,readonly",
        "--mount", "type=bind,source=/home/me/results,target=/workspace/results",
        "--env", "CUDA_DEVICE_ORDER", "--env", "NVIDIA_VISIBLE_DEVICES",
        "--user", "1000:1000", "--group-add", "27", "--group-add", "100",
        "--shm-size", "17179869184", "--ulimit", "memlock=-1:-1", "--ulimit", "nofile=1024:4096",
        "--memory", "1073741824", "--cpus", "1.5",
        "--publish", "127.0.0.1:8888:8888/tcp", "--publish", "[::1]::53/udp",
        "--privileged", "--network", "bridge", "--ipc", "shareable",
        "--cap-add", "SYS_PTRACE", "--cap-drop", "ALL", "--device", "/dev/fuse",
        "--security-opt", "no-new-privileges:true", "--tty",
        "--gpus", '"device=0,2"',
        "nvcr.io/nvidia/tao/tao-toolkit:5.0", "detectnet_v2", "train", "-e", "/specs/train.txt",
    ]  # fmt: skip
    assert run.env == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "NVIDIA_VISIBLE_DEVICES": "0,2"}


def test_in_env_mode_the_gpus_are_the_variable_alone() -> None:
    run = docker_run(request_of(spec()), "env")
    assert "--gpus" not in run.argv
    assert run.env["NVIDIA_VISIBLE_DEVICES"] == "0,2"


def test_one_gpu_needs_no_csv_quotes() -> None:
    run = docker_run(request_of(spec(devices=["3"])))
    assert run.argv[run.argv.index("--gpus") + 1] == "device=3"


def test_hostile_arguments_reach_the_command_line_as_they_are() -> None:
    run = docker_run(request_of(spec(command=["detectnet_v2", *HOSTILE_ARGV])))
    assert run.argv[-len(HOSTILE_ARGV) - 2 :] == ["nvcr.io/nvidia/tao/tao-toolkit:5.0", "detectnet_v2", *HOSTILE_ARGV]


def test_environment_values_stay_off_the_command_line() -> None:
    secret = "k'ey\"$(x)\n`y` ünï"
    run = docker_run(request_of(spec(envs={"NGC_API_KEY": secret, "EMPTY": ""})))
    assert run.env["NGC_API_KEY"] == secret and run.env["EMPTY"] == ""
    assert not any(secret in word for word in run.argv)
    assert run.argv.count("--env") == 3 and "NGC_API_KEY" in run.argv and "EMPTY" in run.argv


@pytest.mark.parametrize(
    "name", ["PATH", "HOME", "LD_LIBRARY_PATH", "LD_PRELOAD", "DOCKER_HOST", "DOCKER_CONFIG", "GODEBUG", "HTTPS_PROXY", "no_proxy"]
)
def test_a_variable_the_docker_cli_reads_itself_goes_on_the_command_line_instead(name: str) -> None:
    run = docker_run(request_of(spec(envs={name: "/x y:$z\nw"})))
    assert f"{name}=/x y:$z\nw" in run.argv
    assert name not in run.env


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ("/data/a,b", '"source=/data/a,b"'),
        ('/data/say "hi"', '"source=/data/say ""hi"""'),
        ("/data/line\nbreak", '"source=/data/line\nbreak"'),
        ("/data/lone\rcr", '"source=/data/lone\rcr"'),
        ("/data/ leading and trailing ", "source=/data/ leading and trailing "),
        ("/data/=equals", "source=/data/=equals"),
        ("/data/ünï", "source=/data/ünï"),
    ],
)
def test_a_mount_path_is_one_csv_field_quoted_when_it_must_be(source: str, field: str) -> None:
    spec_text = mount_spec(Mount(source, "/workspace/x,y", True))
    assert spec_text == f'type=bind,{field},"target=/workspace/x,y",readonly'
    # As docker's and Apptainer's CSV readers see it:
    assert next(csv.reader([spec_text], strict=True)) == ["type=bind", f"source={source}", "target=/workspace/x,y", "readonly"]


def test_a_path_with_a_carriage_return_before_a_line_feed_is_refused_not_mounted_elsewhere() -> None:
    with pytest.raises(LaunchFailure, match="carriage return before a line feed"):
        docker_run(request_of(spec(mounts=[Mount("/data/a\r\nb", "/x")])))


@pytest.mark.parametrize(("cpus", "text"), [(1.5, "1.5"), (4.0, "4"), (0.01, "0.01"), (1.001, "1.000999999"), (4096.0, "4096")])
def test_cpus_on_the_command_line_make_the_same_nano_cpus_as_the_api_even_where_a_float_rounds(cpus: float, text: str) -> None:
    request = request_of(spec(options={"cpus": cpus}))
    assert decimal_cpus(request.nano_cpus or 0) == text
    assert Decimal(text) * 10**9 == request.nano_cpus  # as the CLI multiplies it: exactly


def test_a_published_port_on_any_free_host_port_names_none() -> None:
    assert publish_spec(PublishedPort("8888/tcp", "0.0.0.0", None)) == "0.0.0.0::8888/tcp"


def test_an_interactive_terminal_keeps_its_input_open_across_detaches() -> None:
    arguments = create_arguments(api(), request_of(spec(options={"tty": True}, interactive=True)), "request")
    assert (arguments["tty"], arguments["stdin_open"]) == (True, True)
    config = api().create_container_config(**{k: v for k, v in arguments.items() if k not in ("name", "host_config")})
    assert config["OpenStdin"] is True and config["StdinOnce"] is False  # a detach must not end the shell's input


def test_interactive_input_without_a_terminal_ends_once_with_the_sessions_eof() -> None:
    arguments = create_arguments(api(), request_of(spec(interactive=True)), "request")
    config = api().create_container_config(**{k: v for k, v in arguments.items() if k not in ("name", "host_config")})
    assert config["OpenStdin"] is True and config["StdinOnce"] is True and config["Tty"] is False
    assert "--interactive" in docker_run(request_of(spec(interactive=True))).options

"""~/.tao_mounts.json end to end: mounts, ownership, env, shm, ulimits, ports, and every bad-config message."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from tao_server.testing.daemon import Daemon
from tests.integration.conftest import free_port, job_id_of, tao_as, write_mounts

pytestmark = pytest.mark.integration


def _run_with(daemon: Daemon, tmp_path: Path, config, *args: str):  # type: ignore[no-untyped-def]
    mounts = write_mounts(tmp_path / "tao_mounts.json", config)
    return daemon.tao(*args, env=daemon.env(LAUNCHER_MOUNTS=str(mounts)))


def test_home_mounts_file_is_read_by_default(daemon: Daemon, tmp_path: Path) -> None:
    write_mounts(daemon.home / ".tao_mounts.json", {"Envs": [{"variable": "FROM_HOME", "value": "yes"}]})
    try:
        result = daemon.tao("detectnet_v2", "env", "FROM_HOME")
    finally:
        (daemon.home / ".tao_mounts.json").unlink()
    assert result.stdout == b"FROM_HOME=yes\n"


def test_mount_with_user_leaves_files_owned_by_that_user(daemon: Daemon, tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    results.chmod(0o777)
    config = {
        "Mounts": [{"source": str(results), "destination": "/workspace/results"}],
        "DockerOptions": {"user": "1234:2345"},
    }
    result = _run_with(daemon, tmp_path, config, "detectnet_v2", "train", "-r", "/workspace/results/run1")
    assert result.returncode == 0, result.stderr
    weights = results / "run1" / "model.tlt"
    assert weights.read_text() == "weights of detectnet_v2\n"
    assert (weights.stat().st_uid, weights.stat().st_gid) == (1234, 2345)
    assert ((results / "run1").stat().st_uid, (results / "run1").stat().st_gid) == (1234, 2345)
    identity = _run_with(daemon, tmp_path, config, "detectnet_v2", "id")
    assert identity.stdout == b"uid=1234 gid=2345\n"


def test_read_only_mount_refuses_writes(daemon: Daemon, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "spec.txt").write_text("spec\n")
    config = {"Mounts": [{"source": str(data), "destination": "/workspace/data", "read_only": True}]}
    reads = _run_with(daemon, tmp_path, config, "unet", "run", "cat", "/workspace/data/spec.txt")
    assert reads.stdout == b"spec\n"
    writes = _run_with(daemon, tmp_path, config, "unet", "write", "/workspace/data/new", "x")
    assert writes.returncode != 0
    assert not (data / "new").exists()


def test_envs_reach_the_task(daemon: Daemon, tmp_path: Path) -> None:
    config = {"Envs": [{"variable": "CUDA_DEVICE_ORDER", "value": "PCI_BUS_ID"}, {"variable": "WITH_SPACES", "value": "a b;$c"}]}
    result = _run_with(daemon, tmp_path, config, "ssd", "env", "CUDA_DEVICE_ORDER", "WITH_SPACES")
    assert result.stdout == b"CUDA_DEVICE_ORDER=PCI_BUS_ID\nWITH_SPACES=a b;$c\n"


def test_shm_size_defaults_to_64mb_and_follows_the_config(daemon: Daemon, tmp_path: Path) -> None:
    assert daemon.tao("ssd", "shm").stdout == b"shm_kb=65536\n"
    result = _run_with(daemon, tmp_path, {"DockerOptions": {"shm_size": "128M"}}, "ssd", "shm")
    assert result.stdout == b"shm_kb=131072\n"


def test_ulimits_are_applied(daemon: Daemon, tmp_path: Path) -> None:
    config = {"DockerOptions": {"ulimits": {"nofile": "1024:2048", "stack": 8388608, "core": {"soft": 0, "hard": 0}}}}
    result = _run_with(daemon, tmp_path, config, "ssd", "ulimits")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"nofile=1024:2048 stack=8192:8192 core=0:0\n"


def test_ulimit_above_the_hosts_limit_is_a_clear_error(daemon: Daemon, tmp_path: Path) -> None:
    # Far above any kernel's fs.nr_open, so every engine refuses it.
    result = _run_with(daemon, tmp_path, {"DockerOptions": {"ulimits": {"nofile": 2**30}}}, "ssd", "exit", "0")
    assert result.returncode == 125
    assert b"the engine refused DockerOptions.ulimits.nofile" in result.stderr
    assert b"Traceback" not in result.stderr


def _dockerd_memlock_unlimited() -> bool:
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and Path(f"/proc/{pid}/comm").read_text().strip() == "dockerd":
                line = next(row for row in Path(f"/proc/{pid}/limits").read_text().splitlines() if row.startswith("Max locked memory"))
                return line.split()[-2] == "unlimited"
        except OSError:
            continue
    return False


@pytest.mark.skipif(_dockerd_memlock_unlimited(), reason="this engine may raise memlock without limit")
def test_memlock_unlimited_refusal_names_the_option(daemon: Daemon, tmp_path: Path) -> None:
    result = _run_with(daemon, tmp_path, {"DockerOptions": {"ulimits": {"memlock": -1}}}, "ssd", "exit", "0")
    assert result.returncode == 125
    assert b"DockerOptions.ulimits.memlock" in result.stderr


def test_published_port_binds_to_loopback(daemon: Daemon, tmp_path: Path, docker_client) -> None:
    port = free_port()
    mounts = write_mounts(tmp_path / "ports.json", {"DockerOptions": {"ports": {"8888": port}}})
    job_id = job_id_of(daemon.tao("-d", "ssd", "sleep", "30", env=daemon.env(LAUNCHER_MOUNTS=str(mounts))))
    job = daemon.wait_for_status(job_id, ("running",))
    bindings = docker_client.containers.get(job["container_id"]).attrs["HostConfig"]["PortBindings"]
    assert bindings == {"8888/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    daemon.tao("stop", job_id)


def test_a_host_port_in_use_is_a_clear_error(daemon: Daemon, tmp_path: Path) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        mounts = write_mounts(tmp_path / "taken.json", {"DockerOptions": {"ports": {"8888": port}}})
        result = daemon.tao("ssd", "exit", "0", env=daemon.env(LAUNCHER_MOUNTS=str(mounts)))
    assert result.returncode == 125
    assert f"DockerOptions.ports.8888/tcp: host port 127.0.0.1:{port} cannot be used (Address already in use)".encode() in result.stderr
    assert b"choose another port, or null for any free one" in result.stderr


def test_host_network_serves_on_127_0_0_1(daemon: Daemon, tmp_path: Path) -> None:
    port = free_port()
    mounts = write_mounts(tmp_path / "net.json", {"DockerOptions": {"network": "host"}})
    job_id = job_id_of(daemon.tao("-d", "ssd", "serve", str(port), env=daemon.env(LAUNCHER_MOUNTS=str(mounts))))
    daemon.wait_for_output(job_id, f"serving on {port}".encode())
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                assert conn.recv(100) == b"hello from ssd\n"
                break
        except ConnectionRefusedError:
            assert time.monotonic() < deadline, "the task never listened"
            time.sleep(0.1)
    assert daemon.wait_for_status(job_id, ("succeeded",))["exit_code"] == 0


BAD_CONFIGS = [
    pytest.param('{\n  "Mounts": [\n    {"source": "/tmp",, }\n  ]\n}', "line 3, column 23: invalid JSON", id="malformed-json"),
    pytest.param({"Mount": []}, "Mount: unknown key 'Mount'; valid keys here: Mounts, Envs, DockerOptions", id="unknown-top-level-key"),
    pytest.param(
        {"DockerOptions": {"shm": "1G"}},
        "DockerOptions.shm: unknown key 'shm'; valid keys here: shm_size, ulimits, user, ports",
        id="unknown-option",
    ),
    pytest.param(
        {"Mounts": [{"source": "/does/not/exist", "destination": "/x"}]},
        'Mounts[0].source: "/does/not/exist" does not exist',
        id="missing-source",
    ),
    pytest.param(
        {"Mounts": [{"source": "/tmp", "destination": "relative"}]},
        'Mounts[0].destination: "relative" must be an absolute path',
        id="relative-destination",
    ),
    pytest.param({"Mounts": {"source": "/tmp"}}, "Mounts: expected a list of {source, destination} objects", id="mounts-not-a-list"),
    pytest.param(
        {"Envs": [{"variable": "1BAD", "value": "x"}]}, 'Envs[0].variable: "1BAD" is not a valid variable name', id="bad-env-name"
    ),
    pytest.param({"DockerOptions": {"shm_size": "16Q"}}, 'DockerOptions.shm_size: "16Q" is not a size', id="bad-shm-size"),
    pytest.param(
        {"DockerOptions": {"shm_size": "999999999999T"}},
        'DockerOptions.shm_size: "999999999999T" is too large; the largest size allowed is 9223372036854775807 bytes',
        id="shm-size-beyond-int64",
    ),
    pytest.param(
        {"DockerOptions": {"mem_limit": "999999999999T"}},
        'DockerOptions.mem_limit: "999999999999T" is too large; the largest size allowed is 9223372036854775807 bytes',
        id="mem-limit-beyond-int64",
    ),
    pytest.param(
        {"DockerOptions": {"ulimits": {"stack": 99999999999999999999999}}},
        "DockerOptions.ulimits.stack: 99999999999999999999999 is too large; the largest limit allowed is 9223372036854775807",
        id="ulimit-beyond-int64",
    ),
    pytest.param(
        '{"DockerOptions": {"shm_size": ' + "[" * 5000 + "]" * 5000 + "}}",
        "nested too deeply: arrays and objects more than 100 levels inside each other",
        id="nested-5000-deep",
    ),
    pytest.param(
        '{"DockerOptions": {"shm_size": ' + "[" * 980 + "]" * 980 + "}}",  # Python parses this here, but not in the daemon
        "nested too deeply: arrays and objects more than 100 levels inside each other",
        id="nested-980-deep",
    ),
    pytest.param(
        {"DockerOptions": {"ulimits": {"memlok": -1}}},
        'DockerOptions.ulimits.memlok: "memlok" is not a ulimit; valid names: core',
        id="bad-ulimit-name",
    ),
    pytest.param({"DockerOptions": {"user": "a b"}}, 'DockerOptions.user: "a b" must be "uid", "uid:gid"', id="bad-user"),
    pytest.param({"DockerOptions": {"ports": {"8888": 70000}}}, "DockerOptions.ports.8888: 70000 must be a host port", id="bad-port"),
    pytest.param(
        {"DockerOptions": {"privileged": "yes"}}, 'DockerOptions.privileged: expected true or false, got a string "yes"', id="bad-bool"
    ),
]


@pytest.mark.parametrize(("config", "message"), BAD_CONFIGS)
def test_bad_config_names_file_key_and_value(daemon: Daemon, tmp_path: Path, config, message: str) -> None:
    mounts = write_mounts(tmp_path / "tao_mounts.json", config)
    result = daemon.tao("detectnet_v2", "exit", "0", env=daemon.env(LAUNCHER_MOUNTS=str(mounts)))
    assert result.returncode == 125
    stderr = result.stderr.decode()
    assert f"{mounts}: {message}" in stderr, stderr
    assert "Traceback" not in stderr


def test_a_mounts_file_that_is_not_utf8_is_refused_naming_line_and_column(daemon: Daemon, tmp_path: Path) -> None:
    mounts = tmp_path / "latin1.json"
    mounts.write_bytes(b'{\n  "Envs": [{"variable": "CITY", "value": "Montr\xe9al"}]\n}\n')  # saved as Latin-1
    result = daemon.tao("--mounts", str(mounts), "detectnet_v2", "exit", "0")
    assert result.returncode == 125
    assert f"tao: error: {mounts}: line 2, column 48: not valid UTF-8 (byte 0xe9)".encode() in result.stderr, result.stderr


def test_a_mounts_file_whose_name_is_not_utf8_is_named_readably(daemon: Daemon, tmp_path: Path) -> None:
    mounts = write_mounts(tmp_path / os.fsdecode(b"caf\xe9.json"), {"DockerOptions": {"shm": "1G"}})
    result = daemon.tao("--mounts", str(mounts), "detectnet_v2", "exit", "0")
    assert result.returncode == 125
    assert f"tao: error: {tmp_path}/caf\\xe9.json: DockerOptions.shm: unknown key 'shm'".encode() in result.stderr, result.stderr


def test_missing_explicit_mounts_file_is_named(daemon: Daemon, tmp_path: Path) -> None:
    result = daemon.tao("--mounts", str(tmp_path / "nope.json"), "ssd", "exit", "0")
    assert result.returncode == 125
    assert f"{tmp_path / 'nope.json'}: launcher config file not found".encode() in result.stderr


@pytest.mark.parametrize("target", ["/etc", "/var/run/docker.sock", "/"])
def test_mounts_cannot_reach_system_or_engine_paths_even_through_a_link(daemon: Daemon, tmp_path: Path, target: str) -> None:
    link = tmp_path / "looks-harmless"
    link.symlink_to(target)
    result = _run_with(daemon, tmp_path, {"Mounts": [{"source": str(link), "destination": "/workspace/data"}]}, "ssd", "exit", "0")
    assert result.returncode == 125
    stderr = result.stderr.decode()
    assert f'Mounts[0].source: "{link}" (resolves to ' in stderr
    assert "which jobs may not mount" in stderr


def test_the_daemons_own_data_dir_cannot_be_mounted(daemon: Daemon, tmp_path: Path) -> None:
    result = _run_with(daemon, tmp_path, {"Mounts": [{"source": str(daemon.data_dir / "logs"), "destination": "/x"}]}, "ssd", "exit", "0")
    assert result.returncode == 125
    assert f"is inside {daemon.data_dir}".encode() in result.stderr


def test_files_a_task_writes_belong_to_the_caller_not_root(shared_daemon: Daemon, unprivileged_user) -> None:  # type: ignore[no-untyped-def]
    _, uid, gid = unprivileged_user
    results = shared_daemon.home / "results"
    results.mkdir()
    os.chown(results, uid, gid)
    mounts = write_mounts(shared_daemon.home / "mounts.json", {"Mounts": [{"source": str(results), "destination": "/workspace/results"}]})  # type: ignore[attr-defined]
    mounts.chmod(0o644)
    result = tao_as(shared_daemon, unprivileged_user, "--mounts", str(mounts), "detectnet_v2", "train", "-r", "/workspace/results/run")
    assert result.returncode == 0, result.stderr
    weights = results / "run" / "model.tlt"
    assert (weights.stat().st_uid, weights.stat().st_gid) == (uid, gid)


# -- paths checked before submission -----------------------------------------------------------------


def _experiments(tmp_path: Path) -> tuple[Path, dict[str, list[dict[str, str]]]]:
    """A host dir with a spec, mounted at /workspace/tao-experiments as NVIDIA's examples do."""
    experiments = tmp_path / "tao"
    (experiments / "specs").mkdir(parents=True)
    (experiments / "specs" / "train.txt").write_text("model_config {}\n")
    return experiments, {"Mounts": [{"source": str(experiments), "destination": "/workspace/tao-experiments"}]}


def test_a_host_path_argument_is_refused_before_anything_runs_with_the_container_path(daemon: Daemon, tmp_path: Path) -> None:
    experiments, config = _experiments(tmp_path)
    jobs_before = daemon.tao("list", "--all", "--json").stdout
    spec = experiments / "specs" / "train.txt"
    result = _run_with(daemon, tmp_path, config, "detectnet_v2", "train", "-e", str(spec), "-r", "/workspace/tao-experiments/results")
    assert result.returncode == 125
    said = result.stderr.decode()
    assert said.startswith(f"tao: error: -e {spec}: a host path, which the task cannot see; ")
    assert f"{spec} is /workspace/tao-experiments/specs/train.txt inside the container" in said
    assert said.endswith("give /workspace/tao-experiments/specs/train.txt instead\n") and "Traceback" not in said
    assert daemon.tao("list", "--all", "--json").stdout == jobs_before  # nothing was recorded, nothing ran

    given = _run_with(daemon, tmp_path, config, "detectnet_v2", "train", "-e", "/workspace/tao-experiments/specs/train.txt")
    assert given.returncode == 0 and given.stderr == b"", given.stderr


def test_a_results_dir_outside_every_mount_is_warned_of_and_the_run_goes_on(daemon: Daemon, tmp_path: Path) -> None:
    experiments, config = _experiments(tmp_path)
    lost = _run_with(
        daemon, tmp_path, config, "detectnet_v2", "train", "-e", "/workspace/tao-experiments/specs/train.txt", "-r", "/results"
    )
    assert lost.returncode == 0, lost.stderr
    assert lost.stderr == (
        b"tao: warning: -r /results: the results dir is outside every mount, so its files are lost with the container; "
        b"give a dir under a mount's destination (/workspace/tao-experiments), or mount a host dir at /results (Mounts in "
        + str(tmp_path / "tao_mounts.json").encode()
        + b")\n"
    )
    assert lost.stdout.endswith(b"saved /results/model.tlt\ntraining finished\n")
    kept = _run_with(daemon, tmp_path, config, "detectnet_v2", "train", "-r", "/workspace/tao-experiments/results")
    assert (kept.returncode, kept.stderr) == (0, b"")
    assert (experiments / "results" / "model.tlt").read_text() == "weights of detectnet_v2\n"


def test_the_images_own_paths_pass_untouched(daemon: Daemon, tmp_path: Path) -> None:
    _, config = _experiments(tmp_path)
    result = _run_with(daemon, tmp_path, config, "unet", "run", "cat", "/opt/tao/task.sh")  # a file the image ships
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"#!/bin/sh")


def test_a_missing_launcher_config_is_said_once(daemon: Daemon, tmp_path: Path) -> None:
    home = tmp_path / "fresh-home"
    home.mkdir()
    env = daemon.env(HOME=str(home))
    note = f"tao: note: no launcher config at {home}/.tao_mounts.json: jobs run with no mounts".encode()
    first = daemon.tao("ssd", "exit", "0", env=env)
    assert first.returncode == 0 and first.stderr.startswith(note) and first.stderr.endswith(b"(said once)\n"), first.stderr
    assert daemon.tao("ssd", "exit", "0", env=env).stderr == b""  # said once: not on every command
    assert daemon.tao("list", env=env).stderr == b""

    write_mounts(home / ".tao_mounts.json", {"Envs": []})
    assert daemon.tao("ssd", "exit", "0", env=env).stderr == b""
    (home / ".tao_mounts.json").unlink()  # gone again: said again, once
    assert daemon.tao("ssd", "exit", "0", env=env).stderr.startswith(note)
    assert daemon.tao("ssd", "exit", "0", env=env).stderr == b""

"""What a job may ask for on a shared box: each refusal, each grant, and the escapes tried against them.

The callers are a real second account (useradd) running the real `tao` through setpriv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tao_server.testing.daemon import Daemon, executable
from tests.integration.conftest import job_id_of, tao_as

pytestmark = pytest.mark.integration


def _config(daemon: Daemon, name: str, config: dict[str, Any]) -> dict[str, str]:
    """The env that points `tao` at a launcher config other users can read."""
    path = daemon.home / f"{name}.json"
    path.write_text(json.dumps(config))
    path.chmod(0o644)
    return {"LAUNCHER_MOUNTS": str(path)}


def _user_dir(root: Path, name: str, user: tuple[str, int, int], mode: int = 0o755) -> Path:
    path = root / name
    path.mkdir(parents=True)
    os.chown(path, user[1], user[2])
    path.chmod(mode)
    return path


GATED = [
    ("privileged", {"privileged": True}, b"DockerOptions.privileged: true is refused"),
    ("user", {"user": "0"}, b'DockerOptions.user: "0" is refused'),
    ("network", {"network": "host"}, b'DockerOptions.network: "host" is refused'),
    ("ipc", {"ipc": "host"}, b'DockerOptions.ipc: "host" is refused'),
    ("cap_add", {"cap_add": ["SYS_ADMIN"]}, b'DockerOptions.cap_add: ["SYS_ADMIN"] is refused'),
    ("devices", {"devices": ["/dev/sda"]}, b'DockerOptions.devices: ["/dev/sda"] is refused'),
    ("security_opt", {"security_opt": ["seccomp=unconfined"]}, b'DockerOptions.security_opt: ["seccomp=unconfined"] is refused'),
    ("ports", {"ports": {"8888": "0.0.0.0:18888"}}, b'DockerOptions.ports: "0.0.0.0:18888" is refused'),
]


def test_each_escalation_is_refused_naming_field_value_and_rule(shared_daemon: Daemon, unprivileged_user) -> None:  # type: ignore[no-untyped-def]
    for option, docker_options, message in GATED:
        env = _config(shared_daemon, option, {"DockerOptions": docker_options})
        refused = tao_as(shared_daemon, unprivileged_user, "unet", "run", "true", env=env)
        assert refused.returncode == 125, (option, refused.stderr)
        assert message in refused.stderr, (option, refused.stderr)
        assert (
            f"need the '{option}' grant, which the default policy (no --policy file) does not give uid {unprivileged_user[1]}".encode()
            in refused.stderr
        )
    assert json.loads(shared_daemon.tao("list", "--all", "--json").stdout) == []  # nothing refused was recorded
    # The daemon's own user is not bound: it could run any container through Docker anyway.
    env = _config(shared_daemon, "admin", {"DockerOptions": {"cap_add": ["NET_ADMIN"]}})
    assert shared_daemon.tao("unet", "run", "true", env=shared_daemon.env(**env)).returncode == 0


def test_running_as_yourself_needs_no_grant(shared_daemon: Daemon, unprivileged_user) -> None:  # type: ignore[no-untyped-def]
    _, uid, gid = unprivileged_user
    env = _config(
        shared_daemon, "self", {"DockerOptions": {"user": f"{uid}:{gid}", "ports": {"8888": None}, "security_opt": ["no-new-privileges"]}}
    )
    result = tao_as(shared_daemon, unprivileged_user, "unet", "run", "id", "-u", env=env)
    assert (result.returncode, result.stdout) == (0, f"{uid}\n".encode()), result.stderr


def test_running_as_your_own_name_on_the_host_runs_as_your_numbers(shared_daemon: Daemon, unprivileged_user) -> None:  # type: ignore[no-untyped-def]
    name, uid, gid = unprivileged_user  # useradd made a group of the same name; the image knows neither name
    for user in (name, f"{name}:{name}"):
        env = _config(shared_daemon, "by-name", {"DockerOptions": {"user": user}})
        job_id = job_id_of(tao_as(shared_daemon, unprivileged_user, "-d", "unet", "run", "sh", "-c", "id -u; id -g", env=env))
        job = shared_daemon.wait_for_status(job_id, ("succeeded", "failed", "error"))
        assert job["docker_options"]["user"] == f"{uid}:{gid}", user  # the engine gets numbers, never the name
        assert tao_as(shared_daemon, unprivileged_user, "logs", job_id).stdout == f"{uid}\n{gid}\n".encode(), user
    refused = tao_as(
        shared_daemon, unprivileged_user, "unet", "run", "true", env=_config(shared_daemon, "root", {"DockerOptions": {"user": "root"}})
    )
    assert refused.returncode == 125
    assert b'DockerOptions.user: "root" is refused' in refused.stderr


def test_a_users_job_cannot_gain_privileges_inside_its_container(shared_daemon: Daemon, unprivileged_user) -> None:  # type: ignore[no-untyped-def]
    _, uid, gid = unprivileged_user
    # A bare uid would run with gid 0, root's group: the job gets the caller's own gid instead.
    env = _config(shared_daemon, "bare", {"DockerOptions": {"user": str(uid)}})
    result = tao_as(
        shared_daemon,
        unprivileged_user,
        "unet",
        "run",
        "sh",
        "-c",
        "id -u; id -g; grep -E '^(NoNewPrivs|CapEff|CapBnd)' /proc/self/status",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().split("\n")
    assert lines[:2] == [str(uid), str(gid)]
    status = dict(line.split(":\t") for line in lines[2:] if line)
    # setuid programs in the image stay harmless, and the job holds no capabilities at all
    assert status == {"NoNewPrivs": "1", "CapEff": "0000000000000000", "CapBnd": "0000000000000000"}


def test_a_source_that_contains_engine_paths_is_refused(shared_daemon: Daemon, unprivileged_user) -> None:  # type: ignore[no-untyped-def]
    for source, inner in (("/run", "/run/"), ("/var", "/var/lib/")):
        env = _config(shared_daemon, "contains", {"Mounts": [{"source": source, "destination": "/host"}]})
        refused = tao_as(shared_daemon, unprivileged_user, "unet", "run", "true", env=env)
        assert refused.returncode == 125, source
        assert f"Mounts[0].source: '{source}' contains {inner}".encode() in refused.stderr, refused.stderr
        assert b"which jobs may not mount" in refused.stderr


def test_mounts_must_be_readable_by_the_caller_through_every_link(shared_daemon: Daemon, unprivileged_user) -> None:  # type: ignore[no-untyped-def]
    root = shared_daemon.home
    vault = root / "vault"  # root's, 0700: the user cannot get in
    (vault / "data").mkdir(parents=True)
    vault.chmod(0o700)
    (vault / "data").chmod(0o755)  # readable on its own, but only through the closed vault
    (vault / "data" / "secret.txt").write_text("root's secret\n")
    mine = _user_dir(root, "mine", unprivileged_user)
    os.symlink(vault / "data", mine / "link-to-vault")
    os.symlink("/etc", mine / "link-to-etc")

    cases = [
        (vault / "data", f"'{vault / 'data'}' is not readable by uid {unprivileged_user[1]}".encode()),
        (mine / "link-to-vault", f"'{vault / 'data'}' is not readable by uid {unprivileged_user[1]}".encode()),
        (mine / "link-to-etc", b"(resolves to /etc) is inside /etc, which jobs may not mount"),
    ]
    for source, message in cases:
        env = _config(shared_daemon, "mount", {"Mounts": [{"source": str(source), "destination": "/data"}]})
        refused = tao_as(shared_daemon, unprivileged_user, "unet", "run", "cat", "/data/secret.txt", env=env)
        assert refused.returncode == 125, (source, refused.stderr)
        assert message in refused.stderr, (source, refused.stderr)
        assert b"root's secret" not in refused.stdout

    env = _config(shared_daemon, "mount", {"Mounts": [{"source": str(mine), "destination": "/data"}]})
    allowed = tao_as(shared_daemon, unprivileged_user, "unet", "run", "touch", "/data/made", env=env)
    assert allowed.returncode == 0, allowed.stderr
    assert (os.stat(mine / "made").st_uid, os.stat(mine / "made").st_gid) == unprivileged_user[1:]


def test_a_source_swapped_for_a_link_while_queued_is_not_mounted(shared_daemons, unprivileged_user) -> None:  # type: ignore[no-untyped-def]
    daemon = shared_daemons("--max-running-jobs", "1")
    root = daemon.home
    (root / "vault").mkdir()
    (root / "vault").chmod(0o700)
    (root / "vault" / "secret.txt").write_text("root's secret\n")
    swap = _user_dir(root, "swap", unprivileged_user)
    blocker = job_id_of(daemon.tao("-d", "unet", "sleep", "60"))
    daemon.wait_for_status(blocker, ("running",))
    env = _config(daemon, "swap", {"Mounts": [{"source": str(swap), "destination": "/data"}]})
    queued = tao_as(daemon, unprivileged_user, "-d", "unet", "run", "cat", "/data/secret.txt", env=env)
    assert queued.returncode == 0, queued.stderr
    job_id = job_id_of(queued)
    assert daemon.job(job_id)["status"] == "queued"

    swap.rename(root / "swapped-away")  # what the user could do to a directory of their own
    os.symlink(root / "vault", swap)
    daemon.tao("stop", blocker)
    job = daemon.wait_for_status(job_id, ("error", "succeeded", "failed"))
    assert job["status"] == "error"
    assert "changed after the job was submitted" in job["error"]
    assert b"root's secret" not in (daemon.data_dir / "logs" / f"{job_id}.log").read_bytes()


def test_policy_grants_and_mount_roots(shared_daemons, unprivileged_user, test_group) -> None:  # type: ignore[no-untyped-def]
    import tempfile

    name, uid, _ = unprivileged_user
    group, gid = test_group
    base = Path(tempfile.mkdtemp(prefix="tao-policy-"))
    base.chmod(0o755)
    try:
        data = _user_dir(base, "data", unprivileged_user)
        elsewhere = _user_dir(base, "elsewhere", unprivileged_user)
        policy = base / "policy.toml"
        policy.write_text(
            f'[default]\nmount_roots = ["{data}"]\n\n[user.{name}]\nallow = ["cap_add"]\n\n[group.{group}]\nallow = ["ipc"]\n'
        )
        daemon = shared_daemons("--policy", str(policy))

        granted = _config(daemon, "cap", {"DockerOptions": {"cap_add": ["NET_ADMIN"]}})
        assert tao_as(daemon, unprivileged_user, "unet", "run", "true", env=granted).returncode == 0

        ipc = _config(daemon, "ipc", {"DockerOptions": {"ipc": "host"}})
        outsider = tao_as(daemon, unprivileged_user, "unet", "run", "true", env=ipc)
        assert outsider.returncode == 125
        assert f"which {policy} does not give uid {uid} ({name})".encode() in outsider.stderr
        member = tao_as(daemon, unprivileged_user, "unet", "run", "id", "-G", env=ipc, groups=[gid])
        assert member.returncode == 0, member.stderr
        assert str(gid) in member.stdout.decode().split()  # the caller's groups come along into the job

        inside = _config(daemon, "inside", {"Mounts": [{"source": str(data), "destination": "/data"}]})
        assert tao_as(daemon, unprivileged_user, "unet", "run", "true", env=inside).returncode == 0
        outside = _config(daemon, "outside", {"Mounts": [{"source": str(elsewhere), "destination": "/data"}]})
        refused = tao_as(daemon, unprivileged_user, "unet", "run", "true", env=outside)
        assert refused.returncode == 125
        assert (
            f"Mounts[0].source: '{elsewhere}' is outside the mount roots {policy} allows uid {uid} ({name}): {data}".encode()
            in refused.stderr
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_gpu_cap_per_user_does_not_hold_up_the_line(shared_daemons, unprivileged_user, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.toml"
    policy.write_text("[default]\nmax_gpus = 1\n")
    daemon = shared_daemons("--gpus", "0,1,2,3", "--gpu-mode", "env", "--policy", str(policy))
    too_many = tao_as(daemon, unprivileged_user, "--gpus", "2", "unet", "run", "true")
    assert too_many.returncode == 125
    assert f"this job asks for 2 GPUs, but {policy} lets uid {unprivileged_user[1]}".encode() in too_many.stderr
    assert b"hold at most 1 at once" in too_many.stderr

    first = job_id_of(tao_as(daemon, unprivileged_user, "-d", "--gpus", "1", "unet", "sleep", "60"))
    daemon.wait_for_status(first, ("running",))
    second = job_id_of(tao_as(daemon, unprivileged_user, "-d", "--gpus", "1", "unet", "sleep", "60"))
    admins = job_id_of(daemon.tao("-d", "--gpus", "2", "unet", "sleep", "60"))
    # The user's second job waits for their own first one; the admin's later job is not held up by it.
    assert len(daemon.wait_for_status(admins, ("running",))["gpus"]) == 2
    assert daemon.job(second)["status"] == "queued"
    gpus = json.loads(tao_as(daemon, unprivileged_user, "info", "--json").stdout)["gpus"]
    # The user sees which GPU their job holds, and that others are busy, not whose jobs hold them.
    assert sorted((gpu["held"], gpu["job"] or "") for gpu in gpus) == [(False, ""), (True, ""), (True, ""), (True, first)]
    daemon.tao("stop", first)
    assert len(daemon.wait_for_status(second, ("running",))["gpus"]) == 1
    daemon.tao("stop", second, admins)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[default]\nallow = privileged\n", b"not valid TOML: Invalid value (at line 2, column 9)"),
        ('[default]\nallow = ["root"]\n', b"[default] allow = ['root']: must be a list of grants from: user, privileged"),
        ("[users.alice]\n", b"unknown key 'users'; valid keys: default, user.NAME, group.NAME"),
        ('[user.alice]\nmount_roots = ["data"]\n', b"[user.alice] mount_roots = ['data']: must be a list of absolute paths"),
    ],
)
def test_a_broken_policy_stops_the_daemon_with_the_reason(tmp_path: Path, text: str, message: bytes) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(text)
    result = subprocess.run(
        [executable("tao-server"), "--data-dir", str(tmp_path / "data"), "--socket", str(tmp_path / "tao.sock"), "--policy", str(policy)],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert str(policy).encode() in result.stderr
    assert message in result.stderr, result.stderr

"""The policy file and its checks (tao_server.policy): pure logic, no Docker."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

import pytest

from tao_server.access.admission import Admission
from tao_server.access.caller import Caller
from tao_server.access.paths import ProtectedPaths
from tao_server.access.policy import GRANTS, Policy, load
from tao_server.errors import PolicyError, PolicyRefusal

ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name
ALICE = Caller(uid=os.getuid(), gid=os.getgid(), admin=False)  # the test's own account, judged as a plain user
OTHER = next(entry.pw_name for entry in pwd.getpwall() if entry.pw_uid != os.getuid())  # another account on this host
OTHER_GROUP = next(entry.gr_name for entry in grp.getgrall() if entry.gr_gid != os.getgid())  # a group ALICE is not in


def _policy(tmp_path: Path, text: str) -> Policy:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return load(path)


def test_without_a_file_nothing_is_granted_and_mounts_are_not_narrowed():
    rules = Policy().rules_for(ALICE)
    assert rules.allow == frozenset() and rules.mount_roots == () and rules.max_gpus is None


def test_rules_are_the_union_of_default_user_and_groups(tmp_path: Path):
    policy = _policy(
        tmp_path,
        f'[default]\nallow = ["ipc"]\nmount_roots = ["/data"]\nmax_gpus = 1\n'
        f'[user.{ME}]\nallow = ["devices"]\nmax_gpus = 3\n'
        f'[group.{MY_GROUP}]\nallow = ["cap_add"]\nmount_roots = ["/scratch"]\nmax_gpus = 2\n'
        '[user.somebody-else]\nallow = ["privileged"]\n',
    )
    rules = policy.rules_for(ALICE)
    assert rules.allow == {"ipc", "devices", "cap_add"}
    assert rules.mount_roots == (os.path.realpath("/data"), os.path.realpath("/scratch"))
    assert rules.max_gpus == 3  # the user's own cap wins over the groups' and the default


def test_group_cap_applies_when_the_user_has_none(tmp_path: Path):
    policy = _policy(tmp_path, f"[default]\nmax_gpus = 1\n[group.{MY_GROUP}]\nmax_gpus = 2\n")
    assert policy.rules_for(ALICE).max_gpus == 2


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"privileged": True}, "DockerOptions.privileged"),
        ({"user": "54321:54321"}, "DockerOptions.user"),  # someone else
        ({"user": f"{os.getuid()}:999999"}, "DockerOptions.user"),  # not one of the caller's groups
        ({"user": OTHER}, "DockerOptions.user"),  # another account's name on the daemon's host
        ({"user": "no-such-account-here"}, "DockerOptions.user"),  # a name the host does not know is nobody's own
        ({"user": f"{ME}:{OTHER_GROUP}"}, "DockerOptions.user"),  # not one of the caller's groups, by name
        ({"network": "host"}, "DockerOptions.network"),
        ({"network": "container:other-users-job"}, "DockerOptions.network"),
        ({"ipc": "container:other-users-job"}, "DockerOptions.ipc"),
        ({"cap_add": ["SYS_ADMIN"]}, "DockerOptions.cap_add"),
        ({"devices": ["/dev/sda"]}, "DockerOptions.devices"),
        ({"security_opt": ["apparmor=unconfined"]}, "DockerOptions.security_opt"),
        ({"ports": {"80/tcp": ["0.0.0.0", 8080]}}, "DockerOptions.ports"),
        ({"ports": {"80/tcp": ["127.0.0.1", 443]}}, "DockerOptions.ports"),  # docker-proxy binds it as root
        ({"network": "an-admins-network"}, "DockerOptions.network"),
        ({"ulimits": [{"name": "rtprio", "soft": 99, "hard": 99}]}, "DockerOptions.ulimits"),
        ({"ulimits": [{"name": "nproc", "soft": -1, "hard": -1}]}, "DockerOptions.ulimits"),
    ],
)
def test_escalations_are_refused_without_a_grant(options, field):  # type: ignore[no-untyped-def]
    with pytest.raises(PolicyRefusal) as refused:
        Policy().check(ALICE, [], options)
    assert refused.value.field == field
    assert "the default policy (no --policy file) does not give uid" in refused.value.message


@pytest.mark.parametrize(
    "options",
    [
        {"user": str(os.getuid())},
        {"user": f"{os.getuid()}:{os.getgid()}"},
        {"user": ME},  # the caller's own name on the daemon's host
        {"user": f"{ME}:{MY_GROUP}"},
        {"user": f"{os.getuid()}:{MY_GROUP}"},
        {"network": "none"},
        {"ipc": "private"},
        {"security_opt": ["no-new-privileges"]},
        {"ports": {"80/tcp": ["127.0.0.1", 8080], "81/tcp": ["::1", None]}},
        {"cap_drop": ["ALL"], "privileged": False, "cap_add": [], "devices": []},
        {"network": "bridge", "ulimits": [{"name": "memlock", "soft": -1, "hard": -1}, {"name": "nice", "soft": 0, "hard": 0}]},
    ],
)
def test_what_stays_within_the_callers_rights_passes(options):  # type: ignore[no-untyped-def]
    Policy().check(ALICE, [], options)


def test_nvidia_variables_that_pick_devices_need_the_devices_grant(tmp_path: Path):
    allowed = {"NVIDIA_DRIVER_CAPABILITIES": "compute,utility", "NVIDIA_REQUIRE_CUDA": "cuda>=12", "CUDA_VISIBLE_DEVICES": "0"}
    Policy().check(ALICE, [], {}, allowed)
    with pytest.raises(PolicyRefusal, match="Envs: NVIDIA_IMEX_CHANNELS is refused"):
        Policy().check(ALICE, [], {}, {"NVIDIA_IMEX_CHANNELS": "all"})
    _policy(tmp_path, f'[user.{ME}]\nallow = ["devices"]\n').check(ALICE, [], {}, {"NVIDIA_IMEX_CHANNELS": "all"})


def test_a_grant_lets_the_option_through(tmp_path: Path):
    policy = _policy(tmp_path, f'[user.{ME}]\nallow = ["privileged", "ports"]\n')
    policy.check(ALICE, [], {"privileged": True, "ports": {"80/tcp": ["0.0.0.0", 80]}})


def test_mount_roots_narrow_sources(tmp_path: Path):
    inside = tmp_path / "data" / "set"
    inside.mkdir(parents=True)
    policy = _policy(tmp_path, f'[default]\nmount_roots = ["{tmp_path / "data"}"]\n')
    policy.check(ALICE, [{"source": str(inside)}], {})
    with pytest.raises(PolicyRefusal) as refused:
        policy.check(ALICE, [{"source": str(inside)}, {"source": str(tmp_path / "database")}], {})  # a prefix is not a parent
    assert refused.value.field == "Mounts[1].source"
    assert "is outside the mount roots" in refused.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[default\n", "not valid TOML: "),
        ('[default]\nallow = ["everything"]\n', "must be a list of grants from: " + ", ".join(GRANTS)),
        ("[default]\nmax_gpus = -1\n", "max_gpus = -1: must be a number of GPUs, 0 or more"),
        ("[default]\nmax_gpu = 1\n", "[default] max_gpu: unknown key; valid keys: allow, mount_roots, max_gpus"),
        ("[user]\nalice = 1\n", "[user.alice] must be a table"),
        ("[admins]\n", "unknown key 'admins'"),
    ],
)
def test_a_broken_file_names_file_section_and_reason(tmp_path: Path, text: str, message: str):
    with pytest.raises(PolicyError) as broken:
        _policy(tmp_path, text)
    assert str(tmp_path / "policy.toml") in broken.value.message
    assert message in broken.value.message


def test_a_missing_file_is_named(tmp_path: Path):
    with pytest.raises(PolicyError, match="no such policy file"):
        load(tmp_path / "absent.toml")


@pytest.mark.parametrize("user", [ME, f"{ME}:{MY_GROUP}", f"{os.getuid()}:{MY_GROUP}"])
def test_a_users_own_name_runs_as_their_numbers_which_an_image_cannot_redefine(user: str):
    options = {"user": user}
    Admission(Policy(), ProtectedPaths()).admit(ALICE, [], options, {}, 0)
    assert options["user"] == f"{os.getuid()}:{os.getgid()}"


def test_shares_are_the_users_own_else_the_largest_of_their_groups_else_the_default(tmp_path: Path):
    assert Policy().rules_for(ALICE).shares == 1.0
    assert _policy(tmp_path, "[default]\nshares = 2\n").rules_for(ALICE).shares == 2.0
    assert _policy(tmp_path, f"[default]\nshares = 2\n[group.{MY_GROUP}]\nshares = 3.5\n").rules_for(ALICE).shares == 3.5
    assert _policy(tmp_path, f"[group.{MY_GROUP}]\nshares = 3\n[user.{ME}]\nshares = 0.5\n").rules_for(ALICE).shares == 0.5


def test_the_fair_share_half_life_is_read_as_slurm_writes_times(tmp_path: Path):
    assert Policy().half_life is None  # the daemon's default then: a day
    assert _policy(tmp_path, '[fair_share]\nhalf_life = "2:00:00"\n').half_life == 7200
    assert _policy(tmp_path, '[fair_share]\nhalf_life = "7-0"\n').half_life == 7 * 86400


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[default]\nshares = 0\n", "[default] shares = 0: must be a number above 0"),
        ('[default]\nshares = "many"\n', "shares = 'many': must be a number above 0"),
        ('[fair_share]\nhalf_life = "soon"\n', "[fair_share] half_life = 'soon': must be a time above zero"),
        ("[fair_share]\nhalf_life = 60\n", "[fair_share] half_life = 60: must be a time above zero"),
        ('[fair_share]\ndecay = "1:00"\n', "[fair_share] must be a table with keys half_life"),
    ],
)
def test_broken_fair_share_settings_are_named(tmp_path: Path, text: str, message: str):
    with pytest.raises(PolicyError) as broken:
        _policy(tmp_path, text)
    assert message in broken.value.message


def test_notify_to_is_the_union_of_default_user_and_groups(tmp_path: Path):
    policy = _policy(
        tmp_path,
        '[default]\nnotify_to = ["hooks.corp.example"]\n'
        f'[user.{ME}]\nnotify_to = ["127.0.0.1:9000"]\n'
        f'[group.{MY_GROUP}]\nnotify_to = ["10.0.0.0/8", "hooks.corp.example"]\n'
        '[user.somebody-else]\nnotify_to = ["192.168.0.1"]\n',
    )
    assert [pattern.text for pattern in policy.rules_for(ALICE).notify_to] == ["hooks.corp.example", "127.0.0.1:9000", "10.0.0.0/8"]
    assert Policy().rules_for(ALICE).notify_to == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[default]\nnotify_to = "127.0.0.1"\n', "[default] notify_to = '127.0.0.1': must be a list of strings"),
        ("[default]\nnotify_to = [1]\n", "must be a list of strings"),
        ('[user.x]\nnotify_to = ["127.0.0.1:0"]\n', "[user.x] notify_to: '127.0.0.1:0': port '0' is not a number from 1 to 65535"),
        ('[group.y]\nnotify_to = ["a b"]\n', "[group.y] notify_to: 'a b': 'a b' is neither a host name, an address nor a network"),
    ],
)
def test_a_broken_notify_to_names_file_section_and_pattern(tmp_path: Path, text: str, message: str):
    with pytest.raises(PolicyError) as broken:
        _policy(tmp_path, text)
    assert str(tmp_path / "policy.toml") in broken.value.message
    assert message in broken.value.message

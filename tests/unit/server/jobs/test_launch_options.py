"""Validation of the launcher config (`Mounts`, `Envs`, `DockerOptions`) in tao_server.launch_config."""

from __future__ import annotations

import pytest

from tao_server.access.paths import ProtectedPaths
from tao_server.errors import InvalidLaunchConfig
from tao_server.jobs.launch_options import DEFAULT_SHM_SIZE, parse_size, validate

SOURCE = "/home/user/.tao_mounts.json"
GIB = 1024**3


def error_for(raw) -> InvalidLaunchConfig:
    with pytest.raises(InvalidLaunchConfig) as info:
        validate(raw, SOURCE)
    return info.value


def options(docker_options: dict) -> dict:
    return validate({"DockerOptions": docker_options}, SOURCE).docker_options


# --- defaults and valid configs ---------------------------------------------------------------


def test_no_config_gives_defaults():
    config = validate(None, None)
    assert config.mounts == []
    assert config.envs == {}
    assert config.docker_options == {"shm_size": 64 * 1024**2}


def test_empty_object_gives_defaults():
    config = validate({}, SOURCE)
    assert (config.mounts, config.envs, config.docker_options) == ([], {}, {"shm_size": DEFAULT_SHM_SIZE})


def test_full_config_is_normalised(tmp_path):
    raw = {
        "Mounts": [
            {"source": str(tmp_path), "destination": "/workspace/data/"},
            {"source": str(tmp_path), "destination": "/results", "read_only": True},
        ],
        "Envs": [{"variable": "CUDA_CACHE", "value": "/tmp/cache"}, {"variable": "WORKERS", "value": 4}],
        "DockerOptions": {
            "shm_size": "16G",
            "ulimits": {"memlock": -1, "stack": 67108864},
            "user": "1000:1000",
            "ports": {"8888": 8888},
            "privileged": False,
            "network": "host",
            "tty": True,
            "ipc": "host",
            "cap_add": ["SYS_PTRACE"],
            "cpus": 4,
        },
    }
    config = validate(raw, SOURCE)
    assert config.mounts == [
        {"source": str(tmp_path), "destination": "/workspace/data", "read_only": False},
        {"source": str(tmp_path), "destination": "/results", "read_only": True},
    ]
    assert config.envs == {"CUDA_CACHE": "/tmp/cache", "WORKERS": "4"}
    assert config.docker_options == {
        "shm_size": 16 * GIB,
        "ulimits": [
            {"name": "memlock", "soft": -1, "hard": -1},
            {"name": "stack", "soft": 67108864, "hard": 67108864},
        ],
        "user": "1000:1000",
        "ports": {"8888/tcp": ["127.0.0.1", 8888]},
        "privileged": False,
        "network": "host",
        "tty": True,
        "ipc": "host",
        "cap_add": ["SYS_PTRACE"],
        "cpus": 4.0,
    }


def test_docker_options_without_shm_size_keep_the_default():
    assert options({"tty": True}) == {"shm_size": DEFAULT_SHM_SIZE, "tty": True}


@pytest.mark.parametrize(
    ("limit", "soft", "hard"),
    [
        (-1, -1, -1),
        (67108864, 67108864, 67108864),
        ("1024:2048", 1024, 2048),
        ("1024:-1", 1024, -1),
        ("4096", 4096, 4096),
        ({"soft": 1024, "hard": 2048}, 1024, 2048),
    ],
)
def test_ulimit_forms(limit, soft, hard):
    assert options({"ulimits": {"nofile": limit}})["ulimits"] == [{"name": "nofile", "soft": soft, "hard": hard}]


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        ({"8888": 8888}, {"8888/tcp": ["127.0.0.1", 8888]}),
        ({"8888": "0.0.0.0:9000"}, {"8888/tcp": ["0.0.0.0", 9000]}),
        ({"8888": "9000"}, {"8888/tcp": ["127.0.0.1", 9000]}),
        ({"8888": "[::1]:9000"}, {"8888/tcp": ["::1", 9000]}),
        ({"8888": None}, {"8888/tcp": ["127.0.0.1", None]}),
        ({"53/udp": 5353}, {"53/udp": ["127.0.0.1", 5353]}),
    ],
)
def test_ports_bind_loopback_unless_an_address_is_given(ports, expected):
    assert options({"ports": ports})["ports"] == expected


@pytest.mark.parametrize(("user", "expected"), [("1000:1000", "1000:1000"), ("tao", "tao"), ("tao:users", "tao:users"), (1000, "1000")])
def test_user_forms(user, expected):
    assert options({"user": user})["user"] == expected


def test_env_number_values_become_strings():
    assert validate({"Envs": [{"variable": "A", "value": 1.5}]}, SOURCE).envs == {"A": "1.5"}


def test_ipc_container_mode_is_accepted():
    assert options({"ipc": "container:other"})["ipc"] == "container:other"


# --- parse_size ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("16G", 16 * GIB),
        ("512m", 512 * 1024**2),
        ("1.5 GiB", int(1.5 * GIB)),
        ("64MB", 64 * 1024**2),
        ("2k", 2048),
        ("1t", 1024**4),
        (1048576, 1048576),
        ("100", 100),
        ("8388607T", 8388607 * 1024**4),
        ("9223372036854775807", 2**63 - 1),  # exact, where a float would round it up past the engine's limit
    ],
)
def test_parse_size_accepts(value, expected):
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", ["16Q", "", "G", "-1G", "0", "0.1", 0, -5, True, False, None, 1.5, [16]])
def test_parse_size_rejects(value):
    assert parse_size(value) is None


@pytest.mark.parametrize("option", ["shm_size", "mem_limit"])
@pytest.mark.parametrize("value", ["999999999999T", "8388608T", "9223372036854775808", 2**63, 10**30])
def test_a_size_above_what_the_engine_takes_is_refused_naming_the_field_and_the_largest(option, value):
    error = error_for({"DockerOptions": {option: value}})
    assert error.field == f"DockerOptions.{option}"
    assert "is too large; the largest size allowed is 9223372036854775807 bytes" in error.message


def test_the_largest_size_the_engine_takes_is_accepted():
    assert options({"shm_size": 2**63 - 1, "mem_limit": "8388607T"}) == {"shm_size": 2**63 - 1, "mem_limit": 8388607 * 1024**4}


@pytest.mark.parametrize("limit", [2**63, "1:9223372036854775808", {"soft": 1, "hard": 10**30}])
def test_a_ulimit_above_what_the_engine_takes_is_refused(limit):
    error = error_for({"DockerOptions": {"ulimits": {"stack": limit}}})
    assert error.field == "DockerOptions.ulimits.stack"
    assert "is too large; the largest limit allowed is 9223372036854775807" in error.message


# --- errors ---------------------------------------------------------------------------------------

# (raw config, the key path the error names, the offending value as the message shows it)
ERRORS = [
    pytest.param([], "(top level)", "[]", id="top-level-not-object"),
    pytest.param({"Mount": []}, "Mount", "Mount", id="unknown-top-level-key"),
    pytest.param({"DockerOptions": {"shm": "1G"}}, "DockerOptions.shm", "shm", id="unknown-docker-option"),
    pytest.param({"DockerOptions": []}, "DockerOptions", "[]", id="docker-options-not-object"),
    pytest.param({"Mounts": {"source": "/"}}, "Mounts", '{"source": "/"}', id="mounts-not-list"),
    pytest.param({"Mounts": ["/data"]}, "Mounts[0]", '"/data"', id="mount-not-object"),
    pytest.param({"Mounts": [{"destination": "/data"}]}, "Mounts[0].source", "is missing", id="mount-missing-source"),
    pytest.param({"Mounts": [{"source": "data", "destination": "/data"}]}, "Mounts[0].source", '"data"', id="relative-source"),
    pytest.param(lambda d: {"Mounts": [{"source": f"{d}/nope", "destination": "/data"}]}, "Mounts[0].source", "/nope", id="missing-source"),
    pytest.param(
        lambda d: {"Mounts": [{"source": d, "destination": "data"}]}, "Mounts[0].destination", '"data"', id="relative-destination"
    ),
    pytest.param(
        lambda d: {"Mounts": [{"source": d, "destination": "/data"}, {"source": d, "destination": "/data/"}]},
        "Mounts[1].destination",
        '"/data"',
        id="duplicate-destination",
    ),
    pytest.param(
        lambda d: {"Mounts": [{"source": d, "destination": "/d", "mode": "ro"}]}, "Mounts[0].mode", "mode", id="unknown-mount-key"
    ),
    pytest.param(
        lambda d: {"Mounts": [{"source": d, "destination": "/d", "read_only": "yes"}]},
        "Mounts[0].read_only",
        '"yes"',
        id="read-only-not-bool",
    ),
    pytest.param({"Envs": {"A": "1"}}, "Envs", '{"A": "1"}', id="envs-not-list"),
    pytest.param({"Envs": [{"variable": "1X", "value": "a"}]}, "Envs[0].variable", '"1X"', id="bad-variable-name"),
    pytest.param({"Envs": [{"variable": "A-B", "value": "a"}]}, "Envs[0].variable", '"A-B"', id="dash-in-variable-name"),
    pytest.param({"Envs": [{"variable": "A", "value": ["a"]}]}, "Envs[0].value", '["a"]', id="env-value-list"),
    pytest.param({"Envs": [{"variable": "A", "value": True}]}, "Envs[0].value", "true", id="env-value-bool"),
    pytest.param({"Envs": [{"variable": "A"}]}, "Envs[0].value", "is missing", id="env-missing-value"),
    pytest.param({"Envs": [{"variable": "A", "value": "1", "x": 1}]}, "Envs[0].x", "x", id="unknown-env-key"),
    pytest.param({"DockerOptions": {"shm_size": "16Q"}}, "DockerOptions.shm_size", '"16Q"', id="bad-size-unit"),
    pytest.param({"DockerOptions": {"shm_size": -1}}, "DockerOptions.shm_size", "-1", id="negative-size"),
    pytest.param({"DockerOptions": {"shm_size": "0"}}, "DockerOptions.shm_size", '"0"', id="zero-size"),
    pytest.param({"DockerOptions": {"mem_limit": 0}}, "DockerOptions.mem_limit", "0", id="zero-mem-limit"),
    pytest.param({"DockerOptions": {"shm_size": True}}, "DockerOptions.shm_size", "true", id="bool-size"),
    pytest.param({"DockerOptions": {"cpus": True}}, "DockerOptions.cpus", "true", id="bool-cpus"),
    pytest.param({"DockerOptions": {"cpus": 0}}, "DockerOptions.cpus", "0", id="zero-cpus"),
    pytest.param({"DockerOptions": {"ulimits": {"nofile": True}}}, "DockerOptions.ulimits.nofile", "true", id="bool-ulimit"),
    pytest.param({"DockerOptions": {"ulimits": {"memlok": -1}}}, "DockerOptions.ulimits.memlok", '"memlok"', id="unknown-ulimit"),
    pytest.param(
        {"DockerOptions": {"ulimits": {"nofile": "2048:1024"}}}, "DockerOptions.ulimits.nofile", '"2048:1024"', id="soft-above-hard"
    ),
    pytest.param(
        {"DockerOptions": {"ulimits": {"nofile": {"soft": 10, "hard": 5}}}},
        "DockerOptions.ulimits.nofile",
        '{"soft": 10, "hard": 5}',
        id="soft-above-hard-object",
    ),
    pytest.param(
        {"DockerOptions": {"ulimits": {"nofile": "-1:1024"}}}, "DockerOptions.ulimits.nofile", '"-1:1024"', id="unlimited-soft-finite-hard"
    ),
    pytest.param({"DockerOptions": {"ulimits": {"nofile": -2}}}, "DockerOptions.ulimits.nofile", "-2", id="ulimit-below-minus-one"),
    pytest.param({"DockerOptions": {"ulimits": {"nofile": "abc"}}}, "DockerOptions.ulimits.nofile", '"abc"', id="ulimit-not-number"),
    pytest.param({"DockerOptions": {"ulimits": [1]}}, "DockerOptions.ulimits", "[1]", id="ulimits-not-object"),
    pytest.param({"DockerOptions": {"user": "a b"}}, "DockerOptions.user", '"a b"', id="bad-user"),
    pytest.param({"DockerOptions": {"user": -1}}, "DockerOptions.user", "-1", id="negative-uid"),
    pytest.param({"DockerOptions": {"ports": {"http": 80}}}, "DockerOptions.ports.http", '"http"', id="bad-port-key"),
    pytest.param({"DockerOptions": {"ports": {"70000": 80}}}, "DockerOptions.ports.70000", '"70000"', id="container-port-out-of-range"),
    pytest.param({"DockerOptions": {"ports": {"8888": 70000}}}, "DockerOptions.ports.8888", "70000", id="host-port-out-of-range"),
    pytest.param(
        {"DockerOptions": {"ports": {"8888": "localhost:80"}}}, "DockerOptions.ports.8888", '"localhost:80"', id="host-not-address"
    ),
    pytest.param({"DockerOptions": {"ports": {"8888": True}}}, "DockerOptions.ports.8888", "true", id="bool-host-port"),
    pytest.param({"DockerOptions": {"privileged": "yes"}}, "DockerOptions.privileged", '"yes"', id="privileged-not-bool"),
    pytest.param({"DockerOptions": {"network": "my net"}}, "DockerOptions.network", '"my net"', id="bad-network"),
    pytest.param({"DockerOptions": {"ipc": "shared"}}, "DockerOptions.ipc", '"shared"', id="bad-ipc"),
    pytest.param({"DockerOptions": {"cap_add": "SYS_ADMIN"}}, "DockerOptions.cap_add", '"SYS_ADMIN"', id="cap-add-not-list"),
]


@pytest.mark.parametrize(("raw", "field", "shown"), ERRORS)
def test_error_names_file_key_and_value(raw, field, shown, tmp_path):
    if callable(raw):
        raw = raw(str(tmp_path))
    error = error_for(raw)
    assert error.field == field
    assert error.source == SOURCE
    assert error.message.startswith(f"{SOURCE}: {field}:")
    assert shown in error.message


def test_error_without_source_names_the_launcher_config():
    with pytest.raises(InvalidLaunchConfig) as info:
        validate({"Bogus": 1}, None)
    assert info.value.message.startswith("launcher config: Bogus:")


def test_unknown_top_level_key_lists_valid_keys():
    assert "Mounts, Envs, DockerOptions" in error_for({"mounts": []}).message


def test_unknown_docker_option_lists_valid_options():
    message = error_for({"DockerOptions": {"shm": "1G"}}).message
    assert "shm_size" in message
    assert "ulimits" in message


def test_unknown_ulimit_lists_valid_names():
    assert "nofile" in error_for({"DockerOptions": {"ulimits": {"files": 1}}}).message


def test_duplicate_destination_names_the_first_mount(tmp_path):
    mounts = [{"source": str(tmp_path), "destination": "/data"}, {"source": str(tmp_path), "destination": "/data"}]
    assert "Mounts[0]" in error_for({"Mounts": mounts}).message


def test_non_existent_source_is_reported_as_missing(tmp_path):
    missing = tmp_path / "nope"
    message = error_for({"Mounts": [{"source": str(missing), "destination": "/data"}]}).message
    assert str(missing) in message
    assert "does not exist" in message


def test_soft_above_hard_says_so():
    assert "soft limit above its hard limit" in error_for({"DockerOptions": {"ulimits": {"nofile": "2048:1024"}}}).message


def test_env_value_null_is_named_in_the_message():
    error = error_for({"Envs": [{"variable": "A", "value": None}]})
    assert error.field == "Envs[0].value"
    assert "null" in error.message


# -- protected host paths -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("/", 'Mounts[0].source: "/" is /, which jobs may not mount'),
        ("/etc", 'Mounts[0].source: "/etc" is inside /etc'),
        ("/proc/self", "is inside /proc"),
        ("/sys", "is inside /sys"),
        ("/dev", "is inside /dev"),
    ],
)
def test_system_paths_are_refused(source, fragment):
    with pytest.raises(InvalidLaunchConfig) as info:
        validate({"Mounts": [{"source": source, "destination": "/x"}]}, "f.json")
    assert fragment in info.value.message
    assert info.value.field == "Mounts[0].source"


def test_a_symlink_into_a_protected_tree_is_refused_naming_where_it_leads(tmp_path):
    link = tmp_path / "innocent"
    link.symlink_to("/etc")
    with pytest.raises(InvalidLaunchConfig) as info:
        validate({"Mounts": [{"source": str(link), "destination": "/x"}]}, "f.json")
    assert f'"{link}" (resolves to /etc) is inside /etc' in info.value.message


def test_extra_trees_such_as_the_daemon_data_dir_are_refused(tmp_path):
    data_dir = tmp_path / "data"
    (data_dir / "logs").mkdir(parents=True)
    protected = ProtectedPaths(extra_trees=(str(data_dir),))
    with pytest.raises(InvalidLaunchConfig) as info:
        validate({"Mounts": [{"source": str(data_dir / "logs"), "destination": "/x"}]}, "f.json", protected)
    assert f"is inside {data_dir}" in info.value.message


def test_an_allowed_source_is_stored_resolved(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    config = validate({"Mounts": [{"source": str(tmp_path / "link"), "destination": "/x"}]}, "f.json")
    assert config.mounts[0]["source"] == str(real)


@pytest.mark.parametrize(
    "destination", ["/var/run/nvidia-container-devices/all", "/run/nvidia-container-devices", "//run/nvidia-container-devices/0"]
)
def test_destinations_the_nvidia_runtime_reads_are_refused(tmp_path, destination):
    error = error_for({"Mounts": [{"source": str(tmp_path), "destination": destination}]})
    assert error.field == "Mounts[0].destination"
    assert "ask for GPUs with `tao --gpus N`" in error.message


def test_envs_may_not_set_the_visible_devices():
    error = error_for({"Envs": [{"variable": "NVIDIA_VISIBLE_DEVICES", "value": "all"}]})
    assert error.field == "Envs[0].variable"
    assert "set by the daemon from the GPUs it gives the job" in error.message


def in_a_container(*trees) -> ProtectedPaths:
    """The checks of a daemon that sees the host only under `trees` (TAO_HOST_PATHS)."""
    return ProtectedPaths(host_trees=tuple(str(tree) for tree in trees))


def test_a_daemon_in_a_container_refuses_a_source_outside_the_host_trees_it_sees(tmp_path):
    seen = tmp_path / "home"
    seen.mkdir()
    # /usr exists in the daemon's own filesystem, but that is not the host's /usr.
    with pytest.raises(InvalidLaunchConfig) as info:
        validate({"Mounts": [{"source": "/usr", "destination": "/x"}]}, "f.json", in_a_container(seen))
    assert info.value.field == "Mounts[0].source"
    assert f"is outside the host paths the daemon's container sees ({seen})" in info.value.message


def test_a_daemon_in_a_container_says_unseen_rather_than_missing_for_a_path_it_cannot_see(tmp_path):
    with pytest.raises(InvalidLaunchConfig) as info:
        validate({"Mounts": [{"source": "/srv/datasets", "destination": "/x"}]}, "f.json", in_a_container(tmp_path))
    assert "is outside the host paths" in info.value.message
    assert "does not exist" not in info.value.message


def test_a_daemon_in_a_container_refuses_a_link_that_leads_out_of_the_host_trees(tmp_path):
    seen = tmp_path / "home"
    seen.mkdir()
    (seen / "data").symlink_to("/opt")
    with pytest.raises(InvalidLaunchConfig) as info:
        validate({"Mounts": [{"source": str(seen / "data"), "destination": "/x"}]}, "f.json", in_a_container(seen))
    assert "(resolves to /opt) is outside the host paths" in info.value.message


def test_a_daemon_in_a_container_refuses_dot_dot_out_of_the_host_trees(tmp_path):
    seen = tmp_path / "home"
    seen.mkdir()
    with pytest.raises(InvalidLaunchConfig) as info:
        validate({"Mounts": [{"source": f"{seen}/../../..", "destination": "/x"}]}, "f.json", in_a_container(seen))
    assert "is outside the host paths" in info.value.message


def test_a_daemon_in_a_container_accepts_a_source_inside_the_host_trees(tmp_path):
    seen = tmp_path / "home"
    (seen / "alice" / "data").mkdir(parents=True)
    config = validate({"Mounts": [{"source": str(seen / "alice" / "data"), "destination": "/x"}]}, "f.json", in_a_container(seen))
    assert config.mounts[0]["source"] == str(seen / "alice" / "data")


def test_host_trees_keep_protecting_system_paths_inside_them(tmp_path):
    with pytest.raises(InvalidLaunchConfig) as info:
        validate({"Mounts": [{"source": "/etc/ssl", "destination": "/x"}]}, "f.json", in_a_container("/etc"))
    assert "is inside /etc" in info.value.message

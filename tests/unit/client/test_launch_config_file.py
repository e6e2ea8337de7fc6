"""Reading the launcher config file (tao_client.launch_config.read)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tao_client._errors import LaunchConfigError, NoLaunchConfig
from tao_client.launch_config import for_submission, read

MALFORMED = '{\n  "Mounts": [\n    {"source": "/a" "destination": "/b"}\n  ]\n}'  # comma missing at line 3, column 21


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("LAUNCHER_MOUNTS", raising=False)
    return tmp_path


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_missing_default_file_means_no_config(home):
    assert read() == (None, None)


def test_default_file_is_read(home):
    path = write_json(home / ".tao_mounts.json", {"Envs": [{"variable": "A", "value": "1"}]})
    assert read() == ({"Envs": [{"variable": "A", "value": "1"}]}, str(path))


def test_launcher_mounts_variable_names_the_file(home, monkeypatch):
    path = write_json(home / "other.json", {"DockerOptions": {"shm_size": "16G"}})
    monkeypatch.setenv("LAUNCHER_MOUNTS", str(path))
    assert read() == ({"DockerOptions": {"shm_size": "16G"}}, str(path))


def test_missing_file_from_launcher_mounts_is_an_error(home, monkeypatch):
    path = home / "absent.json"
    monkeypatch.setenv("LAUNCHER_MOUNTS", str(path))
    with pytest.raises(LaunchConfigError) as info:
        read()
    assert info.value.message == f"{path}: launcher config file not found"


def test_explicit_missing_path_is_an_error(home):
    path = home / "absent.json"
    with pytest.raises(LaunchConfigError) as info:
        read(path)
    assert info.value.message == f"{path}: launcher config file not found"


def test_explicit_path_is_read_over_the_default(home):
    write_json(home / ".tao_mounts.json", {"Envs": []})
    path = write_json(home / "mine.json", {"Mounts": []})
    assert read(path) == ({"Mounts": []}, str(path))


def test_explicit_path_with_tilde(home):
    path = write_json(home / "mine.json", {})
    assert read(Path("~/mine.json")) == ({}, str(path))


def test_malformed_json_names_file_line_and_column(home):
    path = home / ".tao_mounts.json"
    path.write_text(MALFORMED, encoding="utf-8")
    with pytest.raises(LaunchConfigError) as info:
        read()
    assert info.value.message.startswith(f"{path}: line 3, column 21: invalid JSON: Expecting ',' delimiter")


def test_unreadable_path_is_an_error(home):
    with pytest.raises(LaunchConfigError) as info:
        read(home)
    assert info.value.message.startswith(f"{home}: cannot read the launcher config")


def test_tilde_in_mount_source_is_expanded(home):
    raw = {
        "Mounts": [{"source": "~/data", "destination": "~/data"}, {"source": "/abs", "destination": "/abs"}],
        "Envs": [{"variable": "A", "value": "~"}],
    }
    path = write_json(home / ".tao_mounts.json", raw)
    config, source = read()
    assert source == str(path)
    assert config["Mounts"] == [{"source": str(home / "data"), "destination": "~/data"}, {"source": "/abs", "destination": "/abs"}]
    assert config["Envs"] == [{"variable": "A", "value": "~"}]


@pytest.mark.parametrize("raw", [[1, 2], {"Mounts": "~/x"}, {"Mounts": ["~/x", {"source": 3}]}])
def test_odd_shapes_are_passed_through_for_the_daemon_to_judge(home, raw):
    write_json(home / ".tao_mounts.json", raw)
    assert read()[0] == raw


TOO_DEEP = "nested too deeply: arrays and objects more than 100 levels inside each other"


@pytest.mark.parametrize("depth", [5000, 990, 101])
def test_a_config_nested_too_deeply_is_an_error_naming_the_file(home, depth):
    # 5000 levels are past what Python's decoder takes; 990 it takes here but cannot send, nor the daemon read.
    path = home / ".tao_mounts.json"
    path.write_text('{"DockerOptions": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}", encoding="utf-8")
    with pytest.raises(LaunchConfigError) as info:
        read()
    assert info.value.message.startswith(f"{path}: {TOO_DEEP}; a launcher config nests objects 4 levels deep at most")


def test_a_config_100_levels_deep_is_passed_to_the_daemon(home):
    path = home / ".tao_mounts.json"
    path.write_text('{"DockerOptions": ' + "[" * 99 + "]" * 99 + "}", encoding="utf-8")
    assert read()[0] is not None


def test_a_number_too_long_for_python_is_an_error_naming_the_file(home):
    path = home / ".tao_mounts.json"
    path.write_text('{"DockerOptions": {"shm_size": ' + "9" * 5000 + "}}", encoding="utf-8")
    with pytest.raises(LaunchConfigError) as info:
        read()
    assert info.value.message == f"{path}: invalid JSON: a number with more than 4300 digits; no launcher config value needs one"


def test_a_file_that_is_not_utf8_is_an_error_naming_line_and_column(home):
    path = home / ".tao_mounts.json"
    path.write_bytes(
        '{\n  "Envs": [{"variable": "A", "value": "naïve"},\n           {"variable": "B", "value": "caf'.encode() + b'\xe9"}]}'
    )
    with pytest.raises(LaunchConfigError) as info:
        read()
    assert info.value.message == (
        f"{path}: line 3, column 43: not valid UTF-8 (byte 0xe9); a launcher config is JSON, which is UTF-8: save the file as UTF-8"
    )


# -- what a submission sends (launch_config.for_submission, which Client, AsyncClient and tao share) --


def test_by_default_a_submission_sends_the_users_file(home):
    path = write_json(home / ".tao_mounts.json", {"Envs": [{"variable": "A", "value": "1"}]})
    assert for_submission() == ({"Envs": [{"variable": "A", "value": "1"}]}, str(path))


def test_a_missing_default_file_is_a_no_launch_config_warning_and_sends_nothing(home):
    with pytest.warns(NoLaunchConfig, match=f"no launcher config at {home}/.tao_mounts.json: jobs run with no mounts"):
        assert for_submission() == (None, None)


def test_false_sends_none_even_when_the_user_has_a_file(home, recwarn):
    write_json(home / ".tao_mounts.json", {"Envs": []})
    assert for_submission(False) == (None, None)
    assert not recwarn.list


def test_a_path_a_dict_and_what_read_returns_are_each_sent(home):
    path = write_json(home / "elsewhere.json", {"Mounts": []})
    assert for_submission(str(path)) == ({"Mounts": []}, str(path))
    assert for_submission(path) == ({"Mounts": []}, str(path))
    assert for_submission(read(path)) == ({"Mounts": []}, str(path))
    assert for_submission({"Envs": []}) == ({"Envs": []}, None)
    assert for_submission({"Envs": []}, "my notebook's config") == ({"Envs": []}, "my notebook's config")


def test_a_path_that_is_not_there_is_an_error_naming_it(home):
    with pytest.raises(LaunchConfigError, match=r"nope\.json: launcher config file not found"):
        for_submission(str(home / "nope.json"))


def test_anything_else_is_an_error_saying_what_is_taken(home):
    with pytest.raises(LaunchConfigError, match=r"launch_config: expected a dict, a path, .* got list"):
        for_submission([{"Mounts": []}])


def test_a_source_name_that_is_not_utf8_is_sent_readable(home):
    path = home / "caf\udce9.json"  # the byte 0xe9 of a Latin-1 file name, as Python decodes argv
    path.write_text("{}")
    assert for_submission(str(path))[1] == f"{home}/caf\\xe9.json"


def test_a_dicts_home_in_a_source_is_this_users_as_in_a_file(home):
    given = {"Mounts": [{"source": "~/tao", "destination": "/workspace"}]}
    assert for_submission(given) == ({"Mounts": [{"source": f"{home}/tao", "destination": "/workspace"}]}, None)
    assert given["Mounts"][0]["source"] == "~/tao"  # the caller's dict is left as it was

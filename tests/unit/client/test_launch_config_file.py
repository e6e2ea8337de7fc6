"""Reading the launcher config file (tao_client.launch_config.read)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tao_client._errors import LaunchConfigError
from tao_client.launch_config import read

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

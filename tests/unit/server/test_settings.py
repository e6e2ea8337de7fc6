from __future__ import annotations

import pytest
from pydantic import ValidationError

from tao_server.settings import Settings


def settings(tmp_path, **values) -> Settings:
    return Settings(data_dir=tmp_path, socket=tmp_path / "tao.sock", **values)


def test_host_paths_are_split_on_commas_and_normalised(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "data").mkdir()
    given = settings(tmp_path, host_paths=f" {tmp_path}/home/ ,{tmp_path}/data,")
    assert given.host_trees == (f"{tmp_path}/home", f"{tmp_path}/data")


def test_no_host_paths_means_the_daemon_sees_the_whole_host(tmp_path):
    assert settings(tmp_path).host_trees is None


def test_a_relative_host_path_is_refused_by_name(tmp_path):
    with pytest.raises(ValidationError) as info:
        settings(tmp_path, host_paths="home")
    assert "--host-paths: 'home' is not an absolute path" in str(info.value)


def test_a_host_path_missing_from_the_daemon_s_container_is_refused_saying_what_to_mount(tmp_path):
    with pytest.raises(ValidationError) as info:
        settings(tmp_path, host_paths=f"{tmp_path}/nowhere")
    assert f"mount the host's {tmp_path}/nowhere into the daemon's container" in str(info.value)


def test_an_empty_variable_counts_as_unset(tmp_path, monkeypatch):
    # docker-compose.yml passes optional settings as TAO_POLICY=${TAO_POLICY:-}.
    monkeypatch.setenv("TAO_POLICY", "")
    monkeypatch.setenv("TAO_HOST_PATHS", "")
    given = settings(tmp_path)
    assert given.policy is None
    assert given.host_trees is None


def test_on_slurm_the_daemon_keeps_many_jobs_in_the_cluster_by_default(tmp_path):
    # Slurm queues and limits them; a pending job must not hold the line for the rest at the daemon.
    assert settings(tmp_path).max_running_jobs == 32
    assert settings(tmp_path, backend="slurm", slurm_shared_dir=tmp_path).max_running_jobs == 1000
    assert settings(tmp_path, backend="slurm", slurm_shared_dir=tmp_path, max_running_jobs=5).max_running_jobs == 5


def test_the_slurm_backend_needs_its_shared_dir(tmp_path):
    with pytest.raises(ValidationError) as info:
        settings(tmp_path, backend="slurm")
    assert "--backend slurm needs --slurm-shared-dir" in str(info.value)

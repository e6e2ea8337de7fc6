from __future__ import annotations

import pytest
from pydantic import ValidationError

from tao_server.backends.slurm.slurm_settings import SlurmSettings
from tao_server.settings import Settings, environment, settings_catalog


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
    assert settings(tmp_path, backend="slurm", slurm=SlurmSettings(shared_dir=tmp_path)).max_running_jobs == 1000
    assert settings(tmp_path, backend="slurm", slurm=SlurmSettings(shared_dir=tmp_path), max_running_jobs=5).max_running_jobs == 5


def test_the_slurm_backend_needs_its_shared_dir(tmp_path):
    with pytest.raises(ValidationError) as info:
        settings(tmp_path, backend="slurm")
    assert "--backend slurm needs --slurm-shared-dir" in str(info.value)


def test_the_slurm_settings_are_read_from_their_own_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("TAO_SLURM_PARTITION", "gpu")
    monkeypatch.setenv("TAO_SLURM_SBATCH_ARGS", "--account=ml --comment='two words'")
    monkeypatch.setenv("TAO_DOCKER_HOST", "unix:///run/other.sock")
    given = settings(tmp_path)
    assert given.slurm.partition == "gpu"
    assert given.slurm.sbatch_argv == ("--account=ml", "--comment=two words")  # split once, where the Slurm settings are validated
    assert given.docker.host == "unix:///run/other.sock"


def test_sbatch_arguments_a_shell_could_not_split_are_refused_naming_them(monkeypatch):
    with pytest.raises(ValidationError) as info:
        SlurmSettings(sbatch_args="--comment='unclosed")
    assert """"--comment='unclosed" cannot be split as a shell would split it: No closing quotation""" in str(info.value)


def test_every_setting_is_in_the_catalog_once_with_its_variable(tmp_path):
    catalog = settings_catalog()
    keys = [setting.key for setting in catalog]
    assert len(keys) == len(set(keys))
    own = {name for name in Settings.model_fields if name not in ("docker", "slurm")}
    assert own | {f"slurm.{name}" for name in SlurmSettings.model_fields} | {"docker.host"} == set(keys)
    envs = {setting.key: setting.env for setting in catalog}
    assert envs["stop_timeout"] == "TAO_STOP_TIMEOUT" and envs["slurm.sbatch_args"] == "TAO_SLURM_SBATCH_ARGS"
    assert envs["docker.host"] == "TAO_DOCKER_HOST" and envs["ngc_api_key"] == "NGC_API_KEY"
    assert all(setting.description for setting in catalog)


def test_the_environment_a_daemon_reports_names_every_tao_variable_but_the_flags_tao_gives(monkeypatch):
    monkeypatch.setenv("TAO_SLURM_PARTITION", "gpu")
    monkeypatch.setenv("NGC_API_KEY", "nvapi-secret")
    reported = environment()
    assert reported["TAO_SLURM_PARTITION"] == "gpu"
    assert "TAO_STOP_TIMEOUT" in reported and "TAO_DOCKER_HOST" in reported
    assert "TAO_SOCKET" not in reported and "TAO_STARTED_BY" not in reported
    assert not any("NGC" in name for name in reported)  # a secret is never reported

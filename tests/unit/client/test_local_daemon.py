"""What the client compares between the daemon `tao` started and the caller's environment (tao_client.local_daemon)."""

from __future__ import annotations

import pytest

from tao_client.local_daemon import describe, differences


@pytest.fixture
def here(tmp_path, monkeypatch):
    for name in ("TAO_MANIFEST", "TAO_GPUS", "TAO_DOCKER_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def reported(cwd, **environment):
    return {"cwd": str(cwd), "environment": {"TAO_MANIFEST": None, "TAO_GPUS": None, "TAO_DOCKER_HOST": None, **environment}}


def test_an_environment_like_the_daemons_differs_in_nothing(tmp_path, here):
    here.setenv("TAO_GPUS", "0,1")
    assert differences(reported(tmp_path, TAO_GPUS="0,1")) == []


def test_a_variable_exported_after_the_daemon_started_is_a_difference(tmp_path, here):
    here.setenv("TAO_MANIFEST", "/x/manifest.json")
    found = differences(reported(tmp_path))
    assert found == [("TAO_MANIFEST", None, "/x/manifest.json")]
    assert describe(found, "; ") == "TAO_MANIFEST: /x/manifest.json here, unset in the daemon"


def test_an_empty_variable_counts_as_unset_as_the_daemon_reads_it(tmp_path, here):
    here.setenv("TAO_MANIFEST", "")
    assert differences(reported(tmp_path)) == []


def test_relative_paths_compare_as_the_files_they_name(tmp_path, here):
    (tmp_path / "sub").mkdir()
    here.setenv("TAO_MANIFEST", "examples/manifest.json")
    assert differences(reported(tmp_path, TAO_MANIFEST=f"{tmp_path}/examples/manifest.json")) == []
    here.chdir(tmp_path / "sub")  # the same words from elsewhere name another file
    assert [name for name, _, _ in differences(reported(tmp_path, TAO_MANIFEST="examples/manifest.json"))] == ["TAO_MANIFEST"]


def test_values_that_are_not_paths_compare_as_they_are(tmp_path, here):
    here.setenv("TAO_DOCKER_HOST", "unix:///var/run/docker.sock")
    assert differences(reported("/elsewhere", TAO_DOCKER_HOST="unix:///var/run/docker.sock")) == []


def test_an_answer_without_an_environment_differs_in_nothing(here):
    assert differences({"version": "0.1.0"}) == []

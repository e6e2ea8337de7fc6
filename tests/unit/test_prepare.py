"""scripts/prepare: the sample gets only what it needs; CI (the tests) gets everything."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import ROOT

FOR_TESTS_ONLY = {
    "docker-registry", "docker-compose", "debootstrap", "systemd", "slurm-wlm", "munge", "openssh-server", "chromium", "prometheus",
}  # fmt: skip


def packages(*args: str) -> list[str]:
    listed = subprocess.run(
        ["bash", str(ROOT / "scripts" / "prepare"), *args, "--list"], capture_output=True, text=True, timeout=60, check=True
    )
    return listed.stdout.split()


def test_the_sample_prepares_only_the_engine_and_busybox() -> None:
    assert packages("--for", "sample") == ["docker.io", "busybox-static"]
    assert "bash scripts/prepare --for sample\n" in (ROOT / "scripts" / "sample").read_text()


def test_the_tests_and_ci_prepare_everything_the_sample_does_and_their_own() -> None:
    assert packages() == packages("--for=tests")
    assert set(packages()) == {"docker.io", "busybox-static"} | FOR_TESTS_ONLY
    assert "bash scripts/prepare\n" in (ROOT / ".ci" / "run").read_text()  # CI's default: --for tests


@pytest.mark.parametrize("args", [["--for", "everything"], ["--bogus"], ["--for"]])
def test_a_use_it_does_not_know_is_refused_installing_nothing(args: list[str]) -> None:
    refused = subprocess.run(["bash", str(ROOT / "scripts" / "prepare"), *args], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and refused.stderr.startswith(("prepare: ", "usage: ")), refused.stderr

"""`tao-server`'s flags, made from the settings models (tao_server.cli.flags): each setting's flag reads into Settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tao_server.cli import flags
from tao_server.settings import Settings, settings_catalog


def parsed(tmp_path: Path, *argv: str) -> Settings:
    args = flags.parser().parse_args(["--data-dir", str(tmp_path), *argv])
    return Settings(**flags.overrides(args))


def test_every_setting_with_a_flag_is_a_flag_with_its_variable_in_its_help() -> None:
    text = flags.parser().format_help()
    for setting in settings_catalog():
        if setting.flag is not None and not setting.hidden:
            assert setting.flag in text and f"${setting.env}" in text, setting.key
    assert "--started-by" not in text  # given by `tao` to the daemons it starts, not for people


def test_flags_read_into_the_settings_they_name(tmp_path: Path) -> None:
    settings = parsed(tmp_path, "--pull", "always", "--host", "127.0.0.2", "--port", "0", "--stop-timeout", "2.5", "--gpu-line", "fifo")
    assert (settings.pull_policy, settings.tcp_host, settings.tcp_port, settings.stop_timeout) == ("always", "127.0.0.2", 0, 2.5)
    assert settings.gpu_line == "fifo"
    assert settings.insecure is False  # a flag not given leaves the variable, then the default


def test_the_no_flags_turn_a_setting_off(tmp_path: Path) -> None:
    settings = parsed(tmp_path, "--no-socket", "--port", "0", "--no-dashboard")
    assert settings.socket is None and settings.dashboard is False


def test_a_backends_flags_go_to_its_own_settings_with_its_variables_for_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAO_SLURM_RUNTIME", "pyxis")
    settings = parsed(tmp_path, "--backend", "slurm", "--slurm-shared-dir", str(tmp_path), "--slurm-sbatch-args", "--qos=normal -A ml")
    assert settings.slurm.shared_dir == tmp_path and settings.slurm.runtime == "pyxis"
    assert settings.slurm.sbatch_argv == ("--qos=normal", "-A", "ml")


def test_a_bad_setting_is_named_by_its_flag_and_variable_in_one_line(tmp_path: Path) -> None:
    daemon = [sys.executable, "-m", "tao_server", "--data-dir", str(tmp_path), "--socket", str(tmp_path / "s")]
    said = subprocess.run([*daemon, "--stop-timeout", "-1"], capture_output=True, text=True)
    assert said.returncode == 2
    assert (
        said.stderr == "tao-server: error: invalid setting --stop-timeout ($TAO_STOP_TIMEOUT): Input should be greater than or equal to 0\n"
    )
    said = subprocess.run([*daemon, "--slurm-sbatch-args", "'unclosed"], capture_output=True, text=True)
    assert said.returncode == 2
    assert said.stderr.startswith("tao-server: error: invalid setting --slurm-sbatch-args ($TAO_SLURM_SBATCH_ARGS): Value error, ")
    assert "No closing quotation" in said.stderr

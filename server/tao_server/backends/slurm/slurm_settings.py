"""The Slurm backend's settings (TAO_SLURM_* variables, --slurm-* flags), validated here.

Settings (settings.py) holds one of these as `settings.slurm`; `tao-server`'s flags, the
variables and the settings reference are all read from the fields below, so a setting added here
needs nothing else. `--slurm-sbatch-args` is split here, as a shell would, once.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SlurmSettings(BaseSettings):
    """Slurm backend (`--backend slurm`)"""

    model_config = SettingsConfigDict(env_prefix="TAO_SLURM_", extra="ignore", env_ignore_empty=True)

    shared_dir: Path | None = Field(
        default=None,
        description="batch scripts, outputs and exit codes: a directory the daemon and every node see at the same path "
        "(needed with --backend slurm)",
        json_schema_extra={"flag": "--slurm-shared-dir"},
    )
    partition: str | None = Field(
        default=None,
        description="the partition jobs go to",
        json_schema_extra={"flag": "--slurm-partition", "default": "the cluster's default"},
    )
    runtime: Literal["docker", "pyxis", "apptainer"] = Field(
        default="docker",
        description="how a node runs the job's container: docker run, srun --container-image (pyxis) or apptainer exec",
        json_schema_extra={"flag": "--slurm-runtime"},
    )
    login: str | None = Field(
        default=None,
        description="USER@HOST: run Slurm's commands there, over one kept-open SSH connection",
        json_schema_extra={"flag": "--slurm-login", "default": "here, on a login node"},
    )
    ssh_config: Path | None = Field(
        default=None,
        description="an ssh_config(5) file for --slurm-login's connection (identity, port, known hosts)",
        json_schema_extra={"flag": "--slurm-ssh-config"},
    )
    sbatch_args: str = Field(
        default="",
        description='default sbatch arguments for every job, as a shell would split them, e.g. "--account=ml --qos=normal"',
        json_schema_extra={"flag": "--slurm-sbatch-args", "default": "none"},
    )

    @field_validator("sbatch_args")
    @classmethod
    def _splits_as_a_shell_would(cls, value: str) -> str:
        try:
            shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} cannot be split as a shell would split it: {exc}") from None
        return value

    @property
    def sbatch_argv(self) -> tuple[str, ...]:
        """--slurm-sbatch-args as sbatch gets them: one argument each."""
        return tuple(shlex.split(self.sbatch_args))

    def missing(self) -> str | None:
        """What a daemon with `--backend slurm` lacks of these settings; None when it lacks nothing."""
        if self.shared_dir is None:
            return "--backend slurm needs --slurm-shared-dir: a directory the daemon and every node see at the same path"
        return None

"""Running Slurm's commands: here (a login node), or on one over a single kept-open SSH connection.

The commands get a cleaned environment (the path, the locale, SLURM_*): sbatch hands its own to
the job, and the daemon's secrets must not travel with it. Every call has a timeout: a slurmctld that does not answer is BackendUnavailable, never a hang.
A command can run as a job's owner (`as_user`, when the daemon is root), so that Slurm's
accounting, limits and fair share see the real user: setpriv switches to their uid, gid and
groups, as the kernel named them on the daemon's socket.

Over SSH, argv is quoted for the remote shell (shlex.join): ssh carries a command line, and each
word must reach the remote command as it was given.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tao_server.backends.slurm.state import Answer
from tao_server.errors import BackendUnavailable

TIMEOUT = 30.0
# What Slurm's commands get of the daemon's environment; sbatch passes it on to the job (--export=ALL).
_KEPT = ("PATH", "LANG", "LANGUAGE", "TZ")
_KEPT_PREFIXES = ("LC_", "SLURM_")


def clean_environment(environment: dict[str, str]) -> dict[str, str]:
    """`environment` without the daemon's secrets (NGC_API_KEY, TAO_*) and its HOME: the path, the locale, Slurm's own."""
    return {name: value for name, value in environment.items() if name in _KEPT or name.startswith(_KEPT_PREFIXES)}


class SlurmCommands:
    def __init__(
        self, login: str | None = None, env: dict[str, str] | None = None, timeout: float = TIMEOUT, ssh_config: Path | None = None
    ) -> None:
        self.login = login
        self._ssh_config = ["-F", str(ssh_config)] if ssh_config is not None else []
        self._env = clean_environment({**os.environ, **(env or {})})
        self._timeout = timeout
        self._control_dir = tempfile.mkdtemp(prefix="tao-ssh-") if login else None

    def run(self, argv: Sequence[str], as_user: tuple[int, int, tuple[int, ...]] | None = None) -> Answer:
        """Run a Slurm command; its answer. BackendUnavailable when it cannot be run or does not return in time."""
        command = self._command(list(argv), as_user)
        try:
            done = subprocess.run(
                command, env=self._env, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", timeout=self._timeout
            )
        except subprocess.TimeoutExpired:
            raise BackendUnavailable(f"Slurm did not answer `{argv[0]}` within {self._timeout:.0f} s") from None
        except OSError as exc:
            raise BackendUnavailable(f"cannot run `{argv[0]}`: {exc.strerror}") from None
        if self.login is not None and done.returncode == 255:  # ssh's own failure, not the command's
            raise BackendUnavailable(f"cannot reach the Slurm login node {self.login} over SSH: {done.stderr.strip()}")
        return Answer(done.returncode, done.stdout, done.stderr)

    def _command(self, argv: list[str], as_user: tuple[int, int, tuple[int, ...]] | None) -> list[str]:
        if as_user is not None and self.login is None and os.geteuid() == 0:
            uid, gid, groups = as_user
            membership = f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups"
            argv = [shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={gid}", membership, "--", *argv]
        if self.login is None:
            return argv
        options = [
            "-o",
            "BatchMode=yes",
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={self._control_dir}/%C",
            "-o",
            "ControlPersist=600",
        ]
        return ["ssh", *self._ssh_config, *options, self.login, "--", shlex.join(argv)]

    def submits_as(self) -> str:
        """Whose jobs Slurm sees: each caller's, or one account's for all."""
        if self.login is not None:
            return f"the login account {self.login} (every job)"
        if os.geteuid() == 0:
            return "each job's owner (the daemon runs as root)"
        return f"the daemon's own account, uid {os.geteuid()} (every job)"

    def close(self) -> None:
        if self._control_dir is not None and self.login is not None:
            subprocess.run(
                ["ssh", *self._ssh_config, "-o", f"ControlPath={self._control_dir}/%C", "-O", "exit", self.login],
                capture_output=True,
                timeout=10,
                check=False,
            )
            shutil.rmtree(self._control_dir, ignore_errors=True)

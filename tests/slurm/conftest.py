"""A real single-node Slurm cluster for the session: munged, slurmctld and slurmd with four gres GPUs.

It starts in about a second (tao_server.testing.slurm) and needs root and Debian's slurm-wlm and
munge, which scripts/prepare installs; like the engine, a missing piece fails the tests, never skips them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tao_server.testing.daemon import LABEL_JOB, Daemon
from tao_server.testing.slurm import SlurmCluster
from tests.integration.conftest import (
    _remove_made_accounts,  # noqa: F401  (removes the accounts the tests made)
    manifest_v2,
)


@pytest.fixture
def slurm(slurm_cluster: SlurmCluster) -> Iterator[SlurmCluster]:
    """The session's cluster, its queue emptied after the test: a failed test's jobs never hold GPUs the next one needs."""
    yield slurm_cluster
    slurm_cluster.cancel_all_jobs()


@pytest.fixture
def on_slurm(slurm: SlurmCluster, toolkit_image: str) -> Iterator[Daemon]:
    """A daemon on the cluster, its socket open to every local user, its files where they can reach theirs."""
    root = Path(tempfile.mkdtemp(prefix="tao-on-slurm-"))
    root.chmod(0o755)
    shared = root / "shared"
    shared.mkdir(mode=0o755)
    manifest = root / "manifest.json"
    manifest.write_text(json.dumps(manifest_v2(toolkit_image)))
    manifest.chmod(0o644)
    args = ("--backend", "slurm", "--slurm-shared-dir", str(shared), "--slurm-partition", slurm.partition, "--gpu-mode", "env")
    daemon = Daemon(root / "daemon", manifest, *args, "--socket-mode", "0666", env=slurm.env()).start()
    daemon.home.chmod(0o755)
    daemon.shared = shared  # type: ignore[attr-defined]
    yield daemon
    daemon.stop()
    daemon.remove_containers()
    shutil.rmtree(root, ignore_errors=True)


def containers_of(job_id: str) -> list[str]:
    listed = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={LABEL_JOB}={job_id}"], capture_output=True, text=True)
    return listed.stdout.split()


def wait_until(condition: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.1)

"""What every kind of test may share: the real Docker engine, the toolkit image built locally, a real Slurm cluster.

Tests that need the engine fail, never skip, when none answers: `bash .ci/run` starts one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Another tag keeps test runs of several checkouts on one engine from rebuilding each other's image.
IMAGE = os.environ.get("TAO_TEST_IMAGE", "tao-test/toolkit:1")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    import docker

    client = docker.from_env()
    try:
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"these tests need a running Docker engine ({exc}); `bash .ci/run` starts one")
    yield client
    client.close()


@pytest.fixture(scope="session")
def toolkit_image(docker_client: Any) -> str:
    """The sample toolkit image (examples/sample-toolkit), built from busybox with no registry."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_sample_image.py"), IMAGE], check=True, stdout=subprocess.DEVNULL)
    return IMAGE


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real single-node Slurm cluster for the session: munged, slurmctld, slurmd, four gres GPUs (tao_server.testing.slurm)."""
    from tao_server.testing.slurm import SlurmCluster

    # A short root: munged's socket path must fit a sockaddr_un, and every account must reach slurm.conf.
    root = Path(tempfile.mkdtemp(prefix="tao-slurm-"))
    root.chmod(0o755)
    cluster = SlurmCluster(root, gpus=4).start()
    yield cluster
    cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, made with openssl: (cert.pem, key.pem) in `directory`."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key

"""A real single-node Slurm cluster for the session: munged, slurmctld and slurmd with four gres GPUs.

It starts in about a second (tao_server.testing.slurm) and needs root and Debian's slurm-wlm and
munge, which scripts/prepare installs; like the engine, a missing piece fails the tests, never skips them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tao_server.testing.slurm import SlurmCluster
from tests.integration.conftest import _remove_made_accounts  # noqa: F401  (removes the accounts the tests made)


@pytest.fixture
def slurm(slurm_cluster: SlurmCluster) -> Iterator[SlurmCluster]:
    """The session's cluster, its queue emptied after the test: a failed test's jobs never hold GPUs the next one needs."""
    yield slurm_cluster
    slurm_cluster.cancel_all_jobs()

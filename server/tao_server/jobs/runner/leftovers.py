"""Runs the backend still has from this daemon after a restart that no active job claims.

Those of jobs the table holds as ended are released: a release the old daemon could not finish.
Those whose job the table does not know at all are left as they are: the database may have been
deleted, replaced or restored from an older backup, and such a run may be someone's job still
running. Each is logged and listed to admins (`tao info`: `unaccounted_runs`), for an admin to
stop once it is known not to be needed (docs/admin/failures.md says how).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tao_server.backends import AdoptedRun
from tao_server.jobs.store import JobStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UnaccountedRun:
    """A run labelled as this daemon's whose job the table does not know: left as it is."""

    run_id: str
    job_id: str
    state: str


def settle(store: JobStore, leftovers: list[AdoptedRun]) -> list[UnaccountedRun]:
    """Release the leftovers of jobs that ended; return, untouched, those of jobs the table does not know."""
    unaccounted = []
    for found in leftovers:
        if store.find(found.job_id) is not None:
            log.info("releasing run %s left by job %s", found.run.run_id[:12], found.job_id)
            found.run.release()
            continue
        unaccounted.append(UnaccountedRun(found.run.run_id, found.job_id, found.state))
        log.warning(
            "run %s (job %s, %s) is labelled as this daemon's, but the job table does not know its job: it is left as it "
            "is; stop it as an admin once it is known not to be needed (see `tao info`)",
            found.run.run_id,
            found.job_id,
            found.state,
        )
    return unaccounted

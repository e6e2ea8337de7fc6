"""Outage recovery: a backend out of reach (BackendUnavailable) ends no job.

The phase that meets an outage reports it (backend_health.py), waits until the backend answers,
finds the job's run again (`Backend.find`) and goes on from where the backend says the run got:
output copying resumes from the byte the job's log has, a stop asked for meanwhile is carried
out then. Meanwhile nothing new starts, and the job keeps its status and its GPUs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from tao_server.backends import AdoptedRun, Run
from tao_server.errors import BackendError, BackendUnavailable
from tao_server.jobs.runner.parts import RunnerParts

log = logging.getLogger(__name__)


class OutageRecovery:
    def __init__(self, parts: RunnerParts) -> None:
        self._parts = parts

    def found_again(self, job_id: str, outage: BackendUnavailable) -> AdoptedRun | None:
        """Once the backend answers again after `outage`: the job's run as it has it, or None."""
        health = self._parts.health
        while True:
            health.lost(outage.message)
            health.wait_until_up()
            try:
                return self._parts.backend.find(job_id)
            except BackendUnavailable as again:
                outage = again

    def act_on_run(self, job_id: str, run: Run, doing: str, act: Callable[[Run], None]) -> None:
        """`act` on the job's run; during an outage, wait and act on the run found again. A refusal is logged."""
        while True:
            try:
                act(run)
                return
            except BackendUnavailable as exc:
                found = self.found_again(job_id, exc)
                if found is None:
                    return
                run = found.run
            except BackendError as exc:
                log.warning("job %s: could not %s run %s: %s", job_id, doing, run.run_id[:12], exc.message)
                return

"""The job runner: owns each job from `queued` to its end, on whichever backend runs it, by phase of its life.

    job_runner.py      JobRunner: what the service, the sessions and the daemon call; builds the phases
    waiting.py         a job that waits for other jobs (--after, a pipeline's after:), settled the moment they end
    queueing.py        a submitted job to a worker, or to its place in the GPU line (the one door to the workers)
    pull_ahead.py      a GPU job's image fetched while it waits in line, so devices never wait for a download
    image_pulls.py     a job's image pulled as its pull policy says, with progress as job events
    starting.py        a job's run prepared (mounts pinned) and started, in its worker; back in line if its image went
    following.py       a started run followed to its end: its output into the log, its end recorded, the run released
    ending.py          every end: recorded, followers woken, GPUs given back, observer told; stops; the workers' guard
    retries.py         a failed task run again (--retries): the same job's next attempt, after a back-off
    deadlines.py       time limits the daemon keeps where the backend does not (one Docker engine)
    outage.py          a backend out of reach ends no job: waited out, the run found again, the work resumed
    backend_health.py  whether the backend answers: lost by whoever meets an outage, found again by a probe
    reconcile.py       adoption after a restart: the table matched with the runs the backend still has
    leftovers.py       the runs no active job claims, settled at start-up
    unrecorded.py      ends the database could not take yet, kept in memory and written later
    observer.py        JobObserver: what the runner tells of each recorded start and end (notifications listen)
    active.py          the jobs the runner owns now, and what it knows of each (its run, a cancel, its grant)
    parts.py           RunnerParts: what every phase shares (stores, backend, GPU line, pools, active jobs)
    worker_pool.py     daemon threads taking calls in order: the runner's workers

Each phase is a class built once by JobRunner with the phases it hands jobs to, so a new one
slots in beside them: a job that waits for other jobs waits in `Waiting`, before `Queueing.enqueue`; a job that
runs again after a failure is enqueued again from an end listener (`JobRunner.on_end`) or the
observer. Modules here import the job core (store, events, logs, gpus, progress), the backend
contract (`tao_server.backends`, never an engine), `tao_server.images` (pulls), `tao_server.access`
(owners, mount pins), `errors` and `models`.
"""

from tao_server.jobs.runner.job_runner import JobRunner

__all__ = ["JobRunner"]

"""The job core, backend-neutral: from a request to a recorded end.

    service.py          JobService: submit, look up, list, cancel and read jobs (what the routes call)
    launch_options.py   the launcher config's Mounts, Envs and DockerOptions (`~/.tao_mounts.json`), validated
    path_args.py        paths in a job's arguments checked against its mounts
    store.py            JobStore: the job table
    runner.py           JobRunner: workers that run each job on the backend, and the reconcile after a restart
    leftovers.py        the runs no active job claims, settled at start-up
    unrecorded.py       ends the database could not take yet, kept and written later
    deadlines.py        time limits the daemon keeps for backends that do not
    backend_health.py   whether the backend answers: an outage waited out, never a job's end
    observer.py         JobObserver: what the runner tells of each start and end (notifications listen)
    log_files.py        LogStore: each job's log file and its followers
    events.py           EventLog: a job's events (pull progress, the image it started from, ...)
    gpus/               which GPUs a job gets: the inventory, the GPU line and its state
    progress/           training progress from TAO's status file, and the series kept of it

Modules here import `tao_server.access`, `tao_server.images`, the backend contract
(`tao_server.backends`, never an engine), `tao_server.runtime` (disk, memory), `errors`,
`models`, and `tao_server.notify` (service.py: the URLs a new job notifies, checked).
"""

"""The job core, backend-neutral: from a request to a recorded end.

    service.py          JobService: submit, look up, list, cancel and read jobs (what the routes call)
    submission.py       a request checked and made into a job: its id, argv, placement, launcher config, admission
    launch_options.py   the launcher config's Mounts, Envs and DockerOptions (`~/.tao_mounts.json`), validated
    path_args.py        paths in a job's arguments checked against its mounts
    store.py            JobStore: the job table
    dependencies.py     the job_dependency table: the jobs a job waits for (--after, --after-any, a pipeline's after:)
    log_files.py        LogStore: each job's log file and its followers
    events.py           EventLog: a job's events (pull progress, the image it started from, ...)
    runner/             JobRunner: each job from `queued` to its end, by phase (queueing, pull-ahead, starting,
                        following, ending; time limits, outage recovery, the reconcile after a restart)
    gpus/               which GPUs a job gets: the inventory, the GPU line and its state
    progress/           training progress from TAO's status file, and the series kept of it

Modules here import `tao_server.access`, `tao_server.images`, the backend contract
(`tao_server.backends`, never an engine), `tao_server.runtime` (disk, memory), `errors`,
`models`, and `tao_server.notify` (service.py: the URLs a new job notifies, checked).
"""

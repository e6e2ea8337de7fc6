"""The job core, backend-neutral: from a request to a recorded end.

service.py (submit, look up, list, cancel: what the routes call), launch_config.py (validates
`~/.tao_mounts.json`), path_args.py (paths in a job's arguments checked against its mounts),
store.py (the job table), runner.py (workers that run each job on the backend, and the
reconcile after a restart; leftovers.py settles the runs no active job claims), gpus.py +
scheduler.py (the GPU inventory and the exclusive GPU line), logs.py (log files and their
followers), events.py (job events such as pull progress and the image a job started from),
observer.py (what the runner tells of each start and end: notifications listen), sessions.py +
session_worker.py (terminals and forwarded ports: who may open them, their bounds, a thread of
each one's own); training progress from TAO's status file: status_locate.py (where it is),
status_reader.py (read from its offset, bounded, beneath the mount), status_lines.py (one line),
progress_state.py (lines folded into progress and series), progress.py (the thread that follows
every running job), metrics.py (series and cursors in the database). Modules here import
`tao_server.access`, `tao_server.images`, the backend contract (`tao_server.backends`, never an
engine), `errors`, `models`, `memory`, and `tao_server.notify` (service.py: the URLs a new job
notifies, checked).
"""

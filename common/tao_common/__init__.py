"""What the `tao` client and the daemon share, in the standard library only.

    paths.py         default locations: the daemon's data dir and socket, the user's launcher config and manifest
    time_limits.py   job time limits in the forms Slurm takes (`--time`), as seconds, and back
    envs.py          which environment variables hold secrets, and their values masked for display
    progress.py      a job's training progress in the words `tao list` and the dashboard show

Both sides import these modules; nothing here imports anything of either, nor anything outside
the standard library, and each module is cheap to import: `tao` reads some of them at every start.
"""

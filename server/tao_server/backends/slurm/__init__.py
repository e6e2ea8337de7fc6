"""The Slurm backend: each job a batch job whose script runs the job's container on a node.

    slurm_backend.py   SlurmBackend: runs made (the batch script written) and adopted after a restart; the cluster described
    slurm_run.py       SlurmRun: one job's batch job, submitted, its output file followed, its end read, cancelled, released
    slurm_settings.py  SlurmSettings: the backend's own settings (TAO_SLURM_*, --slurm-*), validated
    script.py          the batch scripts, for docker, pyxis and Apptainer, from the job's container request
    state.py           squeue, scontrol and sacct read, and the poller that decides what to ask
    monitor.py         the one thread that polls Slurm for every job, and wakes their followers
    ends.py            how a job's end reads from Slurm's state (whose doing, a failed node)
    sweep.py           the sweep job that clears a failed node of a job once it is back
    command_runner.py  Slurm's commands, run here or over one kept-open SSH connection

Only slurm_backend.py, slurm_run.py and command_runner.py run anything; the rest is pure.
"""

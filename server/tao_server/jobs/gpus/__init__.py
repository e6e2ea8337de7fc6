"""Which GPUs a job gets, and when: the daemon's own GPU line (unused where the backend allocates GPUs, Slurm).

    devices.py     the GPU inventory (probed, given, or none) and a job's request read against it
    gpu_line.py    the line's decisions, pure: who is next, which devices, reservations and backfill (fifo, fair, backfill)
    fair_share.py  decayed GPU-second usage per user, which orders the fair and backfill lines
    scheduler.py   GpuScheduler: the line's state (waiting, holding) under one lock; hands devices to the runner

Modules here import `errors` and each other only: the runner calls the scheduler, never the reverse.
"""

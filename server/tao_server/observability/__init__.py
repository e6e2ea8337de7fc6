"""What the daemon tells of its GPUs and itself: GPU use per job, idle GPUs, and Prometheus metrics.

    nvml.py      NVML behind a small interface: the inventory's devices found by index, UUID or PCI bus id, and read
    gpu_use.py   the one thread that samples every device and records each holding job's GPU series
    idle.py      a held device idle for long enough: the job's condition and events, pure
    exporter.py  GET /metrics: a Prometheus collector reading the daemon's memory at each scrape, in a registry of the app's own

Modules here import `tao_server.jobs` (the metric store, events, the progress follower's ratios),
`access` (account names), `models` and `errors`; only nvml.py imports pynvml, and only when the
daemon starts.
"""

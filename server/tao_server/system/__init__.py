"""What the daemon says of itself: `/healthz`, `tao info`, `tao daemon status` and the task list.

    system_service.py   SystemService: the daemon, its database, its manifest, the backend, GPUs and images

It reads the other services (jobs, images) and the runtime (db_watch); only api/ and app.py import it.
"""

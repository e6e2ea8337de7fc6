"""The daemon's process and what it stands on, below the services.

    sockets.py          the data dir's lock, the Unix and TCP sockets and TLS, made and checked before anything listens
    listeners.py        uvicorn protocols that carry the caller's SO_PEERCRED (and hand file descriptors back); TLS on TCP only
    service_manager.py  sd_notify: READY=1 once every listener accepts, STOPPING=1
    stopping.py         the stop bounded by the stop timeout: a watchdog for what still runs
    memory.py           allocator tuning for many log followers, and trimming when they leave
    db_watch.py         the database file deleted or replaced under the daemon, noticed
    disk.py             what a write the disk refused means, and what to do about it

Modules here may import `tao_server.errors`, `tao_server.access` (peer credentials, loopback
addresses) and each other; the services import them, never the other way round.
"""

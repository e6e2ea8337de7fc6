"""Interactive sessions on a job's run: its terminal and connections to its ports.

    session_registry.py  JobSessions: who may open what and when, each session counted against its user's and its job's bounds
    session_worker.py    a thread of each session's own, for its blocking calls into the backend

The API's websockets (api/sessions.py) carry the bytes. Modules here import the
job service and runner (`tao_server.jobs`), the backend contract, `access`, `errors` and `models`.
"""

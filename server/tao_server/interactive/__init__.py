"""Interactive sessions on a job's run: its terminal and connections to its ports.

    session_registry.py  JobSessions: who may open what and when, each session counted against its user's and its job's bounds
    session_worker.py    a thread of each session's own, for its blocking calls into the backend
    terminal_io.py       a terminal session's two directions: the job's output out, keys and resizes in
    port_bridge.py       one connection to a job's port carried over a websocket, both ways, half-closes included
    channel.py           Channel: a session's websocket as these pumps see it (frames in and out, a close)

The API's websockets (api/terminal.py, api/ports.py) hand each session a Channel
(api/websocket_channel.py): nothing here imports the web framework. Modules here import the job
service and runner (`tao_server.jobs`), the backend contract, `access`, `errors` and `models`.
"""

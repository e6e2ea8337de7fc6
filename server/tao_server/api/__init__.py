"""HTTP routes: thin handlers that parse, call a service, and shape the response.

    jobs.py               /v1/jobs: submit, list, inspect, cancel, events
    pipelines.py          /v1/pipelines: run a pipeline file, list, show and stop pipelines
    logs.py               /v1/jobs/{id}/logs: the output as text, a follow stream, or a websocket
    metrics.py            /v1/jobs/{id}/metrics: a job's training series, JSON or CSV
    terminal.py           /v1/jobs/{id}/terminal: the websocket of an interactive job's terminal
    ports.py              /v1/jobs/{id}/ports/{port}: a connection to a job's port (handed over, or a websocket)
    images.py             /v1/images: the manifest's images, pulls ahead of time
    credentials.py        /v1/credentials: the caller's registry logins
    notify.py             /v1/notify: the caller's default notification URLs and signing secret
    system.py             /v1/tasks, /v1/info, /v1/daemon, /healthz
    prometheus.py         GET /metrics for a Prometheus server (an admin, or a scrape token)
    docs.py               /openapi.json, /docs, /redoc: the API's reference, viewers served offline
    deps.py               the services and the caller as Annotated dependencies
    error_responses.py    the daemon's errors as JSON, once, and their documentation (`responses(...)`)
    websocket_channel.py  a session's websocket as the interactive pumps take it, and a refusal said on it
    routing.py            the routers' route class: a body the daemon does not read is a 422
    client_json.py        every JSON a client sends (bodies, control frames), read bounded in size and depth
    body_limit.py         the cap on request bodies, checked before they are read

Routes import services, `access` for the caller, `models` and `errors`: never a backend.
"""

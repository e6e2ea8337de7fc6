"""HTTP routes: thin handlers that parse, call a service, and shape the response.

One router per resource (jobs, metrics: a job's training series, logs, sessions, images,
credentials, system; prometheus: GET /metrics for a Prometheus server), and docs.py for the
OpenAPI reference; deps.py names the services and the caller as Annotated dependencies; errors.py
turns the daemon's errors into JSON once, and documents them once (`responses(...)`); routing.py
is the routers' route class, which makes a body the daemon does not read a 422; client_json.py
reads every JSON a client sends (bodies, control frames), bounded in size and depth;
body_limit.py caps bodies.
Routes import services, `access` for the caller, `models` and `errors`: never a backend.
"""

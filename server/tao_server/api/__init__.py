"""HTTP routes: thin handlers that parse, call a service, and shape the response.

One router per resource (jobs, logs, images, credentials, system), and docs.py for the OpenAPI
reference; deps.py names the services and the caller as Annotated dependencies; errors.py turns
the daemon's errors into JSON once, and documents them once (`responses(...)`).
Routes import services, `access` for the caller, `models` and `errors`: never a backend.
"""

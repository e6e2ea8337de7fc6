"""HTTP routes: thin handlers that parse, call a service, and shape the response.

One router per resource (jobs, logs, images, credentials, system); deps.py names the services
and the caller as Annotated dependencies; errors.py turns the daemon's errors into JSON once.
Routes import services, `access` for the caller, `models` and `errors`: never a backend.
"""

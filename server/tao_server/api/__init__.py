"""HTTP routes: thin handlers that parse, call a service, and shape the response.

One router per resource (jobs, logs, images, credentials, system); deps.py names the services
and the caller as Annotated dependencies; errors.py turns the daemon's errors into JSON once;
routing.py is the routers' route class, which makes a body Python cannot decode a 422.
Routes import services, `access` for the caller, `models` and `errors`: never a backend.
"""

"""Images: which image runs each task, and getting images onto a backend that keeps them.

manifest.py (the task manifest, NVIDIA's launcher config formats), reference.py (image references
as the engine parses them), credentials.py (each user's
registry logins, the daemon's shared ones, NGC_API_KEY), puller.py (one pull shared by the jobs
that need it, with progress), service.py (what the routes call). Modules here import
`tao_server.access`, the backend contract (`tao_server.backends`, never an engine), `errors`
and `models`.
"""

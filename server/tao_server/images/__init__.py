"""Images: which image runs each task, and getting images onto a backend that keeps them.

    manifest.py         the task manifest, in NVIDIA's launcher config formats
    reference.py        image references as the engine parses them (Docker's reference grammar)
    registry_logins.py  each user's registry logins, the daemon's shared ones, NGC_API_KEY for nvcr.io
    puller.py           one pull shared by the jobs that need an image, with progress for each
    image_service.py    ImageService: what the routes call (the manifest's images, pulls ahead of time, logins)

Modules here import `tao_server.access`, the backend contract (`tao_server.backends`, never an
engine), `tao_server.runtime.disk`, `errors` and `models`.
"""

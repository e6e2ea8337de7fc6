"""The Docker engine's backend, the only code that imports docker-py.

    docker_backend.py   DockerBackend and DockerRun: a container per job, created, attached, started, waited for, removed
    session.py          what an interactive session needs of a container: its input, its terminal's size, its ports
    stream.py           a container's output as plain bytes: Docker's multiplexed stream, and skipping to an offset
    image_store.py      DockerImages: what is local, pulls and registry logins checked
    failures.py         the engine's errors as the daemon's: BackendUnavailable, BackendError, LaunchFailure
    docker_settings.py  DockerSettings: the backend's own settings (TAO_DOCKER_*), validated

This __init__ imports nothing: settings.py reads docker_settings.py without loading docker-py.
"""

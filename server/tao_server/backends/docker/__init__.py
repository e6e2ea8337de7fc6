"""The Docker engine's backend: containers for jobs (backend.py), images and logins (images.py),
the engine's errors as the daemon's (failures.py), and the output stream (stream.py)."""

from tao_server.backends.docker.backend import LABEL_DAEMON, LABEL_JOB, DockerBackend, DockerRun, engine_pid
from tao_server.backends.docker.images import DockerImages

__all__ = ["LABEL_DAEMON", "LABEL_JOB", "DockerBackend", "DockerImages", "DockerRun", "engine_pid"]

"""The TAO launcher daemon: a REST service that runs TAO Toolkit tasks in Docker containers."""

__version__ = "0.1.0"

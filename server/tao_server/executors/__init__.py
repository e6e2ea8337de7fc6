"""Executors start and watch task containers. Docker now; Slurm and Kubernetes plug in behind the same interface."""

from tao_server.executors.base import ContainerSpec, ContainerState, Executor, ImageMissing, OutputStream, StartFailure

__all__ = ["ContainerSpec", "ContainerState", "Executor", "ImageMissing", "OutputStream", "StartFailure"]

"""The Docker backend's settings (TAO_DOCKER_* variables), validated here: which engine jobs run on.

Settings (settings.py) holds one of these as `settings.docker`; the settings reference is read
from the fields below.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DockerSettings(BaseSettings):
    """Docker backend (`--backend docker`, the default)"""

    model_config = SettingsConfigDict(env_prefix="TAO_DOCKER_", extra="ignore", env_ignore_empty=True)

    host: str | None = Field(
        default=None,
        description="the Docker engine's address (unix:///var/run/docker.sock, tcp://HOST:2376)",
        json_schema_extra={"default": "$DOCKER_HOST, else the engine's default socket"},
    )

"""Which of a job's environment variables hold secrets, by their names, and their values masked for display.

`tao show` and the dashboard's job page show a job's envs with these values masked; the API
gives them whole to whoever may see the job (its owner, an admin), who set them.
"""

from __future__ import annotations

# Parts of a name that say it holds a secret (NGC_API_KEY, HF_TOKEN, DB_PASSWORD, ...).
SECRET_PARTS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASS", "CREDENTIAL", "AUTH", "PRIVATE", "COOKIE", "SESSION")
MASK = "****"


def is_secret(name: str) -> bool:
    """Whether the variable's name says it holds a secret."""
    upper = name.upper()
    return any(part in upper for part in SECRET_PARTS)


def masked(envs: dict[str, str]) -> dict[str, str]:
    """The envs with the values of those whose names say they hold secrets replaced by ****."""
    return {name: MASK if value and is_secret(name) else value for name, value in envs.items()}

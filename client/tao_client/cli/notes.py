"""Notes `tao` says once per user, not on every command: a marker file in the user's state dir says it was said.

A note is said again once its cause has gone and come back (`forget`), so a user who fixed
the cause and meets it again later hears of it again.
"""

from __future__ import annotations

import os
import sys

from tao_common import paths


def say_once(name: str, message: str) -> None:
    """Say `message` on stderr unless it was said before; a state dir that cannot be written only means it is said again."""
    marker = os.path.join(paths.state_dir(), f"said-{name}")
    if os.path.exists(marker):
        return
    print(f"tao: note: {message} (said once)", file=sys.stderr)
    try:
        os.makedirs(os.path.dirname(marker), mode=0o700, exist_ok=True)
        with open(marker, "w"):
            pass
    except OSError:
        pass


def forget(name: str) -> None:
    """The note's cause is gone: say it again should it come back."""
    marker = os.path.join(paths.state_dir(), f"said-{name}")
    if os.path.exists(marker):
        try:
            os.remove(marker)
        except OSError:
            pass

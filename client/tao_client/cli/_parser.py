"""The argparse parser every verb builds: usage mistakes are launcher failures (exit 125).

Only verb modules import this, so argparse stays off the path of `tao --help` and of task runs.
"""

from __future__ import annotations

import argparse
import sys

from tao_client.cli._common import EXIT_LAUNCHER, error

TYPE_CHECKING = False  # keeps typing out of the CLI's start-up
if TYPE_CHECKING:
    from typing import NoReturn


class Parser(argparse.ArgumentParser):
    """Usage mistakes are launcher failures: exit 125, as `docker run` does."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        error(message)
        sys.exit(EXIT_LAUNCHER)

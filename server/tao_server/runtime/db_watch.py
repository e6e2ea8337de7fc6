"""Whether the database file the daemon opened is still the one at its path.

SQLite goes on writing into a file it has open after that file was deleted (`rm tao.db`) or
replaced (a backup copied over it, a move): every change from then on is lost at the next start,
which finds an empty or older table and, knowing none of the running jobs, would take their runs
for strays. So the daemon remembers the file's device and inode when it opens it and compares
them before each write (one stat, microseconds) and whenever its health is asked. Once they
differ it refuses new work with DatabaseGone, naming the file, and says so in /healthz and
`tao info`, until it is restarted: a file put back is still not the one its connections write.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from tao_server.errors import DatabaseGone

log = logging.getLogger(__name__)


class DatabaseWatch:
    def __init__(self, path: Path) -> None:
        self.path = path
        opened = os.stat(path)
        self._identity = (opened.st_dev, opened.st_ino)
        self._lost: str | None = None
        self._lock = threading.Lock()

    def problem(self) -> str | None:
        """None while the file at the path is the one the daemon opened; else what happened to it, in words."""
        if self._lost is not None:
            return self._lost
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            what = "was deleted"
        else:
            if (now.st_dev, now.st_ino) == self._identity:
                return None
            what = "was replaced by another file"
        return self._lose(what)

    def check(self) -> None:
        """Raise DatabaseGone once the file is no longer the one the daemon opened."""
        if (problem := self.problem()) is not None:
            raise DatabaseGone(problem)

    def _lose(self, what: str) -> str:
        with self._lock:
            if self._lost is None:
                self._lost = (
                    f"the job database {self.path} {what} while the daemon ran: what it would record now is lost at the next "
                    "start, so it takes no new work; restart tao-server (on a database restored from backup, or a new one: "
                    "runs it cannot account for are left running, and `tao info` lists them)"
                )
                log.error("%s", self._lost)
            return self._lost

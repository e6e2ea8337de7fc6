"""A Unix-socket relay in front of the Docker engine that a test can cut: an engine outage on demand.

The daemon under test talks to the engine through `proxy.path`. `cut()` closes every connection
and stops answering (connections are refused), as an engine restart does; `restore()` answers
again. The engine itself, and the containers, never notice.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tao_server.testing.relay import relay, shut


class EngineProxy:
    def __init__(self, path: Path, engine: str = "/var/run/docker.sock") -> None:
        self.path = path
        self.engine = engine
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._listener: socket.socket | None = None
        self.restore()

    @property
    def address(self) -> str:
        return f"unix://{self.path}"

    def restore(self) -> None:
        """Answer again: accept connections and relay them to the engine."""
        with self._lock:
            if self._listener is not None:
                return
            if self.path.exists():
                self.path.unlink()
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(str(self.path))
            listener.listen(128)
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="engine-proxy", daemon=True).start()

    def cut(self) -> None:
        """Close every connection and refuse new ones, until `restore()`."""
        with self._lock:
            listener, self._listener = self._listener, None
            pairs, self._pairs = self._pairs, []
        if listener is not None:
            # Bound but not listening: a client's connect is refused, as with an engine that is down.
            listener.close()
            self._refuse_at_path()
        for pair in pairs:
            for sock in pair:
                shut(sock)

    @contextmanager
    def outage(self) -> Iterator[None]:
        self.cut()
        try:
            yield
        finally:
            self.restore()

    def close(self) -> None:
        self.cut()
        self.path.unlink(missing_ok=True)

    def _refuse_at_path(self) -> None:
        """Leave a socket file nobody listens on at the path: connecting to it is refused, not 'no such file'."""
        self.path.unlink(missing_ok=True)
        placeholder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        placeholder.bind(str(self.path))
        placeholder.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                upstream.connect(self.engine)
            except OSError:
                shut(client)
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    shut(client)
                    shut(upstream)
                    return
                self._pairs.append((client, upstream))
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=relay, args=(source, target), daemon=True).start()

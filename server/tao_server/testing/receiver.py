"""A webhook receiver on a loopback address: records every request and answers as the test scripts it.

    receiver = Receiver().start()              # http://127.0.0.1:PORT/hook
    receiver.answer(500)                       # the next request gets 500, those after it 200
    receiver.hold()                            # requests wait for an answer until release()
    got = receiver.wait_for(lambda seen: len(seen) >= 2)
    receiver.stop()

Nothing here sleeps on a guess: a test waits for what the receiver has seen, and a held answer
stays held until the test lets it go.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    """One request as it arrived, and the status it was answered with."""

    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    status: int
    arrived_at: float  # time.time() once its body was read, before it was answered

    def json(self) -> Any:
        return json.loads(self.body)

    def signed_with(self, secret: str) -> bool:
        """Whether X-Tao-Signature-256 is the HMAC-SHA256 of the body with `secret`, as a receiver checks it."""
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.headers.get("x-tao-signature-256", ""))


@dataclass
class _Script:
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A sender that hung up before its answer (a daemon past its notify timeout) is what some tests hold for: quiet."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class Receiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, path: str = "/hook") -> None:
        self.host = host
        self.path = path
        self._script = _Script()
        self._script.released.set()
        self._seen: list[Received] = []
        self._arrived = 0  # requests read, answered or not
        self._changed = threading.Condition()
        self._server = _Server((host, port), self._handler())
        self.port = self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    def start(self) -> Receiver:
        threading.Thread(target=self._server.serve_forever, name=f"receiver-{self.port}", daemon=True).start()
        return self

    def stop(self) -> None:
        self._script.released.set()
        self._server.shutdown()
        self._server.server_close()

    def answer(self, status: int, headers: dict[str, str] | None = None) -> None:
        """The next request not yet scripted gets `status` (and `headers`); unscripted ones get 200."""
        self._script.answers.append((status, headers or {}))

    def hold(self) -> None:
        """Requests from now on wait, unanswered, until release()."""
        self._script.released.clear()

    def release(self) -> None:
        self._script.released.set()

    @property
    def seen(self) -> list[Received]:
        with self._changed:
            return list(self._seen)

    def wait_for(self, condition: Callable[[list[Received]], bool], timeout: float = 60) -> list[Received]:
        """What the receiver has seen once `condition` holds of it; the timeout is a safety net only."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self._seen):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the receiver never saw what was awaited; it saw {len(self._seen)}: {self._seen}")
                self._changed.wait(left)
            return list(self._seen)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._take(self)

            do_GET = do_PUT = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test reads `seen`, not a log

        return Handler

    def wait_arrived(self, count: int, timeout: float = 60) -> None:
        """Return once `count` requests have arrived, answered or held."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._arrived < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"only {self._arrived} requests arrived, never {count}")
                self._changed.wait(left)

    def _take(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        arrived_at = time.time()
        with self._changed:
            self._arrived += 1
            self._changed.notify_all()
        self._script.released.wait()
        with self._changed:
            status, headers = self._script.answers.pop(0) if self._script.answers else (200, {})
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", "2")
        request.end_headers()
        request.wfile.write(b"ok")
        with self._changed:
            received_headers = {k.lower(): v for k, v in request.headers.items()}
            self._seen.append(Received(request.command, request.path, received_headers, body, status, arrived_at))
            self._changed.notify_all()

"""`tao-server healthcheck`: exit 0 when the daemon answers /healthz with "ok", else 1 and why.

A container's HEALTHCHECK runs this every few seconds, so it imports the standard library only
(no settings stack, no web framework): it asks the socket the daemon was configured with, the
same `TAO_SOCKET` (or, without a socket, `TAO_TCP_PORT` on loopback) the daemon reads.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import sys

from tao_common import paths

TIMEOUT = 4.0  # under the image's HEALTHCHECK --timeout, so a hung daemon is reported, not killed


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=TIMEOUT)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(self.path)


def main(argv: list[str]) -> int:
    try:
        connection = _connection(argv)
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        print(f"unhealthy: no answer from the daemon: {exc}", file=sys.stderr)
        return 1
    try:
        health = json.loads(body)
    except ValueError:
        health = {}
    if response.status == 200 and health.get("status") == "ok":
        print("healthy")
        return 0
    print(f"unhealthy: /healthz answered {response.status}: {body.decode(errors='replace')[:300]}", file=sys.stderr)
    return 1


def _connection(argv: list[str]) -> http.client.HTTPConnection:
    """The daemon's socket (`--socket PATH`, else the daemon's own default), or its loopback TCP port."""
    if argv[:1] == ["--socket"] and len(argv) > 1:
        return _UnixConnection(argv[1])
    if os.environ.get("TAO_SOCKET") or not os.environ.get("TAO_TCP_PORT"):
        return _UnixConnection(os.environ.get("TAO_SOCKET") or paths.socket_path())
    port = int(os.environ["TAO_TCP_PORT"])
    if os.environ.get("TAO_TLS_CERT"):
        # Liveness over loopback: the certificate names the host's public name, not 127.0.0.1.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection("127.0.0.1", port, timeout=TIMEOUT, context=context)
    return http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)

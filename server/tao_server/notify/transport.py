"""One try of a delivery: a POST to the checked address, and what its answer means.

The URL's host is resolved and every address checked (addresses.py) at each try, then the
connection goes to the checked address itself, never to the name again, so a DNS answer that
changes in between (rebinding) cannot redirect it; the address connected to is checked once more.
The request carries the URL's own Host header, and TLS verifies the certificate for the URL's
host name. Redirects are never followed, proxies never used (http.client reads no environment),
and a try lasts at most `timeout` seconds in all, however slowly a receiver answers.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from tao_server.notify.addresses import AddressCheck, Destination, IPAddress, Refused, Unresolvable
from tao_server.notify.urls import NotifyUrl, masked, parse

TIMEOUT = 10.0
_RETRIED_STATUSES = frozenset({408, 425, 429})  # and every 5xx: the receiver may take it later
_SHOWN_ANSWER = 200  # characters of a refusing answer's body kept in its event

Outcome = Literal["delivered", "retry", "failed"]


@dataclass(frozen=True)
class Answer:
    """How a try went: delivered, worth another try, or failed for good; and in words, for the job's events."""

    outcome: Outcome
    message: str
    status: int | None = None


# The owner's notify_to patterns and where they come from, as the policy says now.
AllowedFor = Callable[[int], tuple[tuple[Destination, ...], str]]


class Poster:
    def __init__(self, check: AddressCheck, allowed_for: AllowedFor, timeout: float = TIMEOUT) -> None:
        self._check = check
        self._allowed_for = allowed_for
        self._timeout = timeout

    def post(self, url_text: str, owner_uid: int, body: bytes, headers: dict[str, str]) -> Answer:
        url = parse(url_text)
        if url.basic_auth is not None:
            headers = {**headers, "Authorization": url.basic_auth}
        allowed, rules = self._allowed_for(owner_uid)
        try:
            addresses = self._check.addresses(url.host, url.port, allowed, rules)
        except Refused as exc:
            return Answer("failed", f"refused: {exc.message}")
        except Unresolvable as exc:
            return Answer("retry", str(exc))
        errors = []
        for address in addresses:
            try:
                return self._send(url, address, body, headers)
            except (OSError, http.client.HTTPException) as exc:
                errors.append(f"{address}: {_reason(exc, self._timeout)}")
        return Answer("retry", "; ".join(errors))

    def _send(self, url: NotifyUrl, address: IPAddress, body: bytes, headers: dict[str, str]) -> Answer:
        connection = _pinned(url, address, self._timeout)
        # A receiver that answers a byte at a time would reset a socket timeout forever: the try is cut at its deadline.
        cut = threading.Event()
        deadline = threading.Timer(self._timeout, _cut, args=(connection, cut))
        deadline.start()
        try:
            connection.request("POST", url.target, body=body, headers=headers)
            response = connection.getresponse()
            shown = response.read(_SHOWN_ANSWER * 4).decode("utf-8", "replace")
            return _meaning(response.status, response.reason, response.getheader("Location"), shown)
        except (OSError, http.client.HTTPException):
            if cut.is_set():
                raise TimeoutError from None
            raise
        finally:
            deadline.cancel()
            connection.close()


def _meaning(status: int, reason: str, location: str | None, shown: str) -> Answer:
    said = f"answered {status} {reason}".rstrip()
    if 200 <= status < 300:
        return Answer("delivered", said, status)
    if 300 <= status < 400:
        where = f" to {masked(location)}" if location else ""
        return Answer("failed", f"{said}, a redirect{where}: redirects are not followed; give the URL it redirects to", status)
    detail = " ".join(shown.split())[:_SHOWN_ANSWER]
    said += f": {detail}" if detail else ""
    if status >= 500 or status in _RETRIED_STATUSES:
        return Answer("retry", said, status)
    return Answer("failed", said, status)


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to a checked address, with the URL's own Host header."""

    def __init__(self, url: NotifyUrl, address: IPAddress, timeout: float) -> None:
        super().__init__(url.host, url.port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = _connect(self.address, self.port, self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a checked address: the certificate verified for the URL's host name, as for any https request."""

    def __init__(self, url: NotifyUrl, address: IPAddress, timeout: float) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(url.host, url.port, timeout=timeout, context=self.tls)
        self.address = address

    def connect(self) -> None:
        self.sock = self.tls.wrap_socket(_connect(self.address, self.port, self.timeout), server_hostname=self.host)


def _pinned(url: NotifyUrl, address: IPAddress, timeout: float) -> http.client.HTTPConnection:
    return (_PinnedHTTPS if url.scheme == "https" else _PinnedHTTP)(url, address, timeout)


def _connect(address: IPAddress, port: int, timeout: float | None) -> socket.socket:
    """A TCP connection to exactly `address`; OSError when the kernel says it reached another."""
    sock = socket.create_connection((str(address), port), timeout=timeout)
    peer = ipaddress.ip_address(str(sock.getpeername()[0]).partition("%")[0])
    if peer != address:
        sock.close()
        raise OSError(f"connected to {peer}, not the checked address {address}")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _cut(connection: http.client.HTTPConnection, cut: threading.Event) -> None:
    """End a try at its deadline: a shutdown wakes a read blocked in another thread, which a close would not."""
    cut.set()
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed: the try has ended


def _reason(exc: Exception, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"its TLS certificate is not valid for it: {exc.verify_message}"
    return str(exc) or type(exc).__name__

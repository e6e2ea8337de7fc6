"""Notification URLs: checked when given (http or https, a host, nothing a request could not carry), and
masked wherever they are shown back.

A user and password in a URL are sent as HTTP Basic authentication, as a browser sends them.
Webhook URLs carry their credentials: a password (`https://user:pass@host/`), a token in the query,
or, as Slack's, Mattermost's, Teams' and Discord's do, in the path. A URL is shown with its
password and query values replaced by ****, and every path segment after the first of 8
characters or more by **** and its last 4 characters, enough to tell two URLs apart.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

from tao_server.errors import InvalidRequest

MAX_URL_LENGTH = 2048
MASK = "****"
_SCHEMES = {"http": 80, "https": 443}
_KEPT_TAIL = 4


@dataclass(frozen=True)
class NotifyUrl:
    """A checked URL: the text as given, and the parts a delivery needs."""

    text: str
    scheme: str
    host: str  # lower case; an IPv6 address without its brackets
    port: int
    target: str  # path and query, what the request line carries
    basic_auth: str | None = None  # the Authorization header a user:password in the URL stands for

    @property
    def masked(self) -> str:
        return masked(self.text)


def parse(text: str, field: str = "notify") -> NotifyUrl:
    """The URL, checked; InvalidRequest naming `field`, the URL (masked) and what is allowed."""
    if not isinstance(text, str) or not text:
        raise InvalidRequest(f"{field}: expected an http:// or https:// URL", field=field)
    if len(text) > MAX_URL_LENGTH:
        raise InvalidRequest(f"{field}: the URL is {len(text)} characters; at most {MAX_URL_LENGTH}", field=field)
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in text) or not text.isascii():
        raise InvalidRequest(
            f"{field}: {masked(text)!r} holds spaces, control or non-ASCII characters; percent-encode them (%20)", field=field
        )
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidRequest(f"{field}: {masked(text)!r} is not a valid URL: {exc}", field=field) from None
    if parts.scheme not in _SCHEMES:
        raise InvalidRequest(f"{field}: {masked(text)!r}: only http:// and https:// URLs are notified", field=field)
    if not parts.hostname:
        raise InvalidRequest(f"{field}: {masked(text)!r} names no host", field=field)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return NotifyUrl(text, parts.scheme, parts.hostname, port or _SCHEMES[parts.scheme], target, _basic_auth(parts))


def _basic_auth(parts: SplitResult) -> str | None:
    """`Basic <base64>` for the URL's user and password (percent-decoded), as a browser sends them; None without."""
    if parts.username is None:
        return None
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def masked(text: str) -> str:
    """The URL as listings and events show it: its credentials replaced by ****."""
    try:
        parts = urlsplit(text)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return MASK
    if not parts.scheme or host is None:
        return MASK
    netloc = _masked_user(parts) + (f"[{host}]" if ":" in host else host) + (f":{port}" if port is not None else "")
    segments = parts.path.split("/")
    # segments[0] is "" (the path starts with "/"), segments[1] the first, kept as it is.
    path = "/".join(segments[:2] + [_masked_segment(segment) for segment in segments[2:]])
    query = "&".join(_masked_pair(pair) for pair in parts.query.split("&")) if parts.query else ""
    return f"{parts.scheme}://{netloc}{path}" + (f"?{query}" if query else "")


def _masked_user(parts: SplitResult) -> str:
    if parts.username is None:
        return ""
    if parts.password is None:
        return f"{MASK}@"  # a lone user part is a token (https://TOKEN@host/)
    return f"{parts.username}:{MASK}@"


def _masked_segment(segment: str) -> str:
    return MASK + segment[-_KEPT_TAIL:] if len(segment) >= 8 else segment


def _masked_pair(pair: str) -> str:
    name, equals, _ = pair.partition("=")
    return f"{name}={MASK}" if equals else MASK

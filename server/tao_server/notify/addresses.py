"""Where a notification may go: the address classes refused, the daemon's own addresses, and the
policy's `notify_to` patterns that let an admin open some of them.

A notification is the daemon's own request, sent from where the daemon sits on the network: a
URL that resolves to loopback, link-local (the cloud metadata service at 169.254.169.254),
private or other special-purpose ranges, or to the daemon's own host, would let a job's owner
reach what only the daemon can. Those are refused unless `notify_to` lists them. An IPv6 address
that carries an IPv4 one (IPv4-mapped, NAT64, 6to4) is judged by the IPv4 address it carries.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
# Named ranges first (their names go into refusals), then anything Python's is_global leaves out (IANA's registry).
_CLASSES: tuple[tuple[IPNetwork, str], ...] = (
    (_V4("0.0.0.0/8"), "a 'this network' address (0.0.0.0/8)"),
    (_V4("10.0.0.0/8"), "a private address (10.0.0.0/8)"),
    (_V4("100.64.0.0/10"), "a shared (carrier-grade NAT) address (100.64.0.0/10)"),
    (_V4("127.0.0.0/8"), "a loopback address (127.0.0.0/8)"),
    (_V4("169.254.0.0/16"), "a link-local address (169.254.0.0/16, where cloud metadata services answer)"),
    (_V4("172.16.0.0/12"), "a private address (172.16.0.0/12)"),
    (_V4("192.0.0.0/24"), "an IETF protocol address (192.0.0.0/24)"),
    (_V4("192.0.2.0/24"), "a documentation address (192.0.2.0/24)"),
    (_V4("192.88.99.0/24"), "a 6to4 relay address (192.88.99.0/24)"),
    (_V4("192.168.0.0/16"), "a private address (192.168.0.0/16)"),
    (_V4("198.18.0.0/15"), "a benchmarking address (198.18.0.0/15)"),
    (_V4("198.51.100.0/24"), "a documentation address (198.51.100.0/24)"),
    (_V4("203.0.113.0/24"), "a documentation address (203.0.113.0/24)"),
    (_V4("224.0.0.0/4"), "a multicast address (224.0.0.0/4)"),
    (_V4("240.0.0.0/4"), "a reserved address (240.0.0.0/4)"),
    (_V6("::/128"), "the unspecified address (::)"),
    (_V6("::1/128"), "a loopback address (::1)"),
    (_V6("::/96"), "an IPv4-compatible address (::/96, deprecated)"),
    (_V6("64:ff9b:1::/48"), "a local NAT64 address (64:ff9b:1::/48)"),
    (_V6("100::/64"), "a discard-only address (100::/64)"),
    (_V6("2001::/32"), "a Teredo address (2001::/32)"),
    (_V6("2001:db8::/32"), "a documentation address (2001:db8::/32)"),
    (_V6("fc00::/7"), "a private (unique local) address (fc00::/7)"),
    (_V6("fe80::/10"), "a link-local address (fe80::/10)"),
    (_V6("fec0::/10"), "a site-local address (fec0::/10, deprecated)"),
    (_V6("ff00::/8"), "a multicast address (ff00::/8)"),
)
_NAT64 = _V6("64:ff9b::/96")


def refused_class(address: IPAddress) -> str | None:
    """Why `address` is no place for a notification ("a loopback address (127.0.0.0/8)"); None for a public one."""
    carried = _carried_v4(address)
    if carried is not None:
        found = refused_class(carried)
        return f"{found}, as the IPv4 address {carried} it carries" if found is not None else None
    for network, name in _CLASSES:
        if address.version == network.version and address in network:
            return name
    if not address.is_global or address.is_multicast:
        return "a special-purpose address (not globally reachable)"
    return None


def _carried_v4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (IPv4-mapped, NAT64, 6to4); None for others."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


@dataclass(frozen=True)
class Destination:
    """One `notify_to` pattern: a host name (`*` matches any part), an address or network, and maybe a port.

    "hooks.internal.example", "*.corp.example:8443", "127.0.0.1:9000", "10.1.0.0/16", "[fd00::1]:443", "fd00::/8".
    """

    text: str
    name: str | None = None  # a host name pattern, lower case
    network: IPNetwork | None = None
    port: int | None = None  # None: any port

    def matches(self, host: str, address: IPAddress, port: int) -> bool:
        """Whether a URL's host (as written) resolving to `address`, on `port`, is what this pattern lets through."""
        if self.port is not None and port != self.port:
            return False
        if self.network is not None:
            return _unmapped(address) in self.network or address in self.network
        return self.name is not None and fnmatch.fnmatchcase(host.lower(), self.name)


def parse_destination(text: str) -> Destination:
    """A `notify_to` pattern; ValueError saying what is wrong with it."""
    text = text.strip()
    host, port = _split_port(text)
    if not host:
        raise ValueError("no host")
    try:
        return Destination(text, network=ipaddress.ip_network(host, strict=False), port=port)
    except ValueError:
        pass
    if any(char in host for char in "/[]@ ") or not all(part for part in host.split(".")):
        raise ValueError(f"{host!r} is neither a host name, an address nor a network")
    return Destination(text, name=host.lower(), port=port)


def _split_port(text: str) -> tuple[str, int | None]:
    """("host", port or None) from "host", "host:port", "[v6]", "[v6]:port" or a bare IPv6 address or network."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected [ADDRESS]:PORT")
        return host, _port(rest[1:]) if rest else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, _port(port)
    return text, None  # no port, or a bare IPv6 address (several colons)


def _port(text: str) -> int:
    if not text.isdecimal() or not 0 < int(text) < 65536:
        raise ValueError(f"port {text!r} is not a number from 1 to 65535")
    return int(text)


def _unmapped(address: IPAddress) -> IPAddress:
    carried = _carried_v4(address)
    return carried if carried is not None else address


class Refused(Exception):
    """A URL's address is no place for a notification; `message` names the address and why."""

    def __init__(self, message: str, address: str) -> None:
        super().__init__(message)
        self.message = message
        self.address = address


class Unresolvable(Exception):
    """A URL's host name does not resolve (now)."""


Resolver = Callable[[str, int], list[IPAddress]]


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, in the resolver's order; Unresolvable when none."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolvable(f"{host} does not resolve: {exc}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in found]
    return list(dict.fromkeys(addresses))


class CachedResolver:
    """A resolver that keeps each host's addresses for `ttl` seconds: submissions of a user with default URLs
    resolve them once a while, not once each. Deliveries resolve anew at every try."""

    def __init__(self, resolver: Resolver = resolve, ttl: float = 30.0, size: int = 256) -> None:
        self._resolve = resolver
        self._ttl = ttl
        self._size = size
        self._lock = threading.Lock()
        self._known: dict[tuple[str, int], tuple[float, list[IPAddress]]] = {}

    def __call__(self, host: str, port: int) -> list[IPAddress]:
        with self._lock:
            found = self._known.get((host, port))
        if found is not None and time.monotonic() - found[0] < self._ttl:
            return found[1]
        addresses = self._resolve(host, port)
        with self._lock:
            if len(self._known) >= self._size:
                self._known.clear()
            self._known[(host, port)] = (time.monotonic(), addresses)
        return addresses


class AddressCheck:
    """Resolves a URL's host and says which of its addresses a notification may go to, under given `notify_to` patterns.

    Every address the host resolves to must pass: a name that gives a public and a private address
    is refused whole, so no resolver's order decides where a delivery goes.
    """

    def __init__(self, own: Callable[[], frozenset[IPAddress]], resolver: Resolver = resolve) -> None:
        self._own = own
        self._resolve = resolver

    def addresses(self, host: str, port: int, allowed: Iterable[Destination], rules: str) -> list[IPAddress]:
        """The addresses to connect to; Refused (naming the address and the rule) or Unresolvable."""
        allowed = tuple(allowed)
        found = self._resolve(host, port)
        own = self._own()
        for address in found:
            why = refused_class(address) or ("one of this daemon's own addresses" if _unmapped(address) in own else None)
            if why is None or any(pattern.matches(host, address, port) for pattern in allowed):
                continue
            listed = ", ".join(pattern.text for pattern in allowed) or "nothing"
            shown = f"{host} resolves to {address}, which is" if not _is_literal(host, address) else f"{host} is"
            raise Refused(
                f"{shown} {why}: notifications go there only where the policy's notify_to lists it "
                f"(port {port}; notify_to in {rules}: {listed})",
                str(address),
            )
        return found


def _is_literal(host: str, address: IPAddress) -> bool:
    """Whether the URL gave the address itself rather than a name."""
    try:
        return ipaddress.ip_address(host) == address
    except ValueError:
        return False


class OwnAddresses:
    """The addresses of this host's interfaces, and any the daemon listens on; read again after `ttl` seconds."""

    def __init__(self, listening: Iterable[str] = (), ttl: float = 60.0) -> None:
        self._listening = frozenset(_addresses(listening))
        self._ttl = ttl
        self._lock = threading.Lock()
        self._known: frozenset[IPAddress] = frozenset()
        self._read_at = float("-inf")

    def __call__(self) -> frozenset[IPAddress]:
        with self._lock:
            if time.monotonic() - self._read_at > self._ttl:
                self._known = frozenset(interface_addresses()) | self._listening
                self._read_at = time.monotonic()
            return self._known


def interface_addresses() -> set[IPAddress]:
    """The addresses this host's kernel calls local: IPv4 from /proc/net/fib_trie, IPv6 from /proc/net/if_inet6."""
    found: set[IPAddress] = set()
    last = ""
    for line in _lines("/proc/net/fib_trie"):
        text = line.strip()
        if text.startswith(("|--", "+--")):
            last = text[3:].split()[0]
        elif text.startswith("/32 host LOCAL") and last:
            found |= set(_addresses([last]))
    for line in _lines("/proc/net/if_inet6"):
        digits = line.split()[0] if line.split() else ""
        if len(digits) == 32:
            found.add(ipaddress.IPv6Address(int(digits, 16)))
    return found


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []  # not Linux, or no IPv6: nothing more to add


def _addresses(texts: Iterable[str]) -> list[IPAddress]:
    found: list[IPAddress] = []
    for text in texts:
        try:
            found.append(ipaddress.ip_address(text.strip("[]")))
        except ValueError:
            continue  # a host name or a wildcard: its addresses are the interfaces' already
    return found

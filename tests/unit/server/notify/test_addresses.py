"""Where a notification may go: the address classes refused, notify_to patterns, and the check after resolution."""

from __future__ import annotations

import ipaddress
import re

import pytest

from tao_server.notify.addresses import (
    AddressCheck,
    CachedResolver,
    Destination,
    IPAddress,
    OwnAddresses,
    Refused,
    interface_addresses,
    parse_destination,
    refused_class,
)


def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(
    ("address", "named"),
    [
        ("127.0.0.1", "loopback"),
        ("127.0.0.2", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private (unique local)"),
        ("fd12:3456::1", "private (unique local)"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("0.0.0.0", "'this network'"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "reserved"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.10", "documentation"),
        ("2001:db8::1", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("192.0.0.8", "IETF protocol"),
        ("fec0::1", "site-local"),
        ("2001::1", "Teredo"),
        ("100::1", "discard-only"),
    ],
)
def test_each_special_purpose_range_is_refused_by_name(address: str, named: str) -> None:
    found = refused_class(ip(address))
    assert found is not None and named in found, found


@pytest.mark.parametrize(
    ("address", "carried", "named"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "169.254.169.254", "link-local"),
        ("::ffff:10.0.0.1", "10.0.0.1", "private"),
        ("64:ff9b::a9fe:a9fe", "169.254.169.254", "link-local"),  # NAT64
        ("2002:7f00:1::1", "127.0.0.1", "loopback"),  # 6to4
        ("2002:a00:1::1", "10.0.0.1", "private"),
    ],
)
def test_an_ipv6_address_carrying_an_ipv4_one_is_judged_by_it(address: str, carried: str, named: str) -> None:
    found = refused_class(ip(address))
    assert found is not None and named in found and f"the IPv4 address {carried}" in found, found


@pytest.mark.parametrize("address", ["1.1.1.1", "8.8.8.8", "151.101.1.1", "2606:4700::1111", "2001:4860:4860::8888", "::ffff:1.1.1.1"])
def test_public_addresses_pass(address: str) -> None:
    assert refused_class(ip(address)) is None


@pytest.mark.parametrize(
    ("text", "name", "network", "port"),
    [
        ("hooks.corp.example", "hooks.corp.example", None, None),
        ("Hooks.Corp.Example:8443", "hooks.corp.example", None, 8443),
        ("*.corp.example", "*.corp.example", None, None),
        ("127.0.0.1:9000", None, "127.0.0.1/32", 9000),
        ("10.0.0.0/8", None, "10.0.0.0/8", None),
        ("[fd00::1]:443", None, "fd00::1/128", 443),
        ("fd00::/8", None, "fd00::/8", None),
        ("::1", None, "::1/128", None),
    ],
)
def test_notify_to_patterns_read_as_written(text: str, name: str | None, network: str | None, port: int | None) -> None:
    pattern = parse_destination(text)
    assert pattern.name == name
    assert (str(pattern.network) if pattern.network is not None else None) == network
    assert pattern.port == port


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "no host"),
        ("host:0", "port '0'"),
        ("host:http", "port 'http'"),
        ("[::1]x", "[ADDRESS]:PORT"),
        ("a..b", "neither"),
        ("a b", "neither"),
    ],
)
def test_a_broken_pattern_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says.replace("[", r"\[").replace("]", r"\]")):
        parse_destination(text)


def test_a_pattern_matches_its_host_or_network_and_port_only() -> None:
    named = parse_destination("*.corp.example:8443")
    assert named.matches("hooks.corp.example", ip("10.0.0.5"), 8443)
    assert not named.matches("hooks.corp.example", ip("10.0.0.5"), 443)
    assert not named.matches("corp.example.evil", ip("10.0.0.5"), 8443)
    network = parse_destination("10.1.0.0/16")
    assert network.matches("anything", ip("10.1.2.3"), 1)
    assert network.matches("anything", ip("::ffff:10.1.2.3"), 1)  # mapped: the IPv4 address it carries
    assert not network.matches("anything", ip("10.2.0.1"), 1)


def resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str, _port: int) -> list[IPAddress]:
        return [ip(address) for address in table[host]]

    return resolve


def check(table: dict[str, list[str]], own: frozenset[IPAddress] = frozenset()) -> AddressCheck:
    return AddressCheck(lambda: own, resolver(table))


def test_a_name_resolving_to_a_refused_address_is_refused_naming_both_and_the_rule() -> None:
    checking = check({"metadata.example": ["169.254.169.254"]})
    with pytest.raises(Refused) as refused:
        checking.addresses("metadata.example", 80, [parse_destination("127.0.0.1:9000")], "policy.toml [default]")
    assert refused.value.address == "169.254.169.254"
    assert "metadata.example resolves to 169.254.169.254" in refused.value.message
    assert "link-local" in refused.value.message
    assert "notify_to in policy.toml [default]: 127.0.0.1:9000" in refused.value.message


def test_a_name_with_one_public_and_one_private_address_is_refused_whole() -> None:
    """DNS rebinding in one answer: no resolver order may decide where a delivery goes."""
    checking = check({"rebind.example": ["1.1.1.1", "10.0.0.1"]})
    with pytest.raises(Refused, match=re.escape("10.0.0.1")):
        checking.addresses("rebind.example", 443, [], "the default policy")


def test_the_daemons_own_public_address_is_refused_unless_listed() -> None:
    own = frozenset({ip("203.0.114.7")})
    with pytest.raises(Refused, match="this daemon's own addresses"):
        check({"self.example": ["203.0.114.7"]}, own).addresses("self.example", 443, [], "policy")
    listed = [parse_destination("self.example:443")]
    assert check({"self.example": ["203.0.114.7"]}, own).addresses("self.example", 443, listed, "policy") == [ip("203.0.114.7")]


def test_listing_opens_exactly_the_listed_host_and_port() -> None:
    allowed = [parse_destination("127.0.0.1:9000")]
    checking = check({"127.0.0.1": ["127.0.0.1"], "127.0.0.2": ["127.0.0.2"]})
    assert checking.addresses("127.0.0.1", 9000, allowed, "policy") == [ip("127.0.0.1")]
    with pytest.raises(Refused, match="port 9001"):
        checking.addresses("127.0.0.1", 9001, allowed, "policy")
    with pytest.raises(Refused, match=re.escape("127.0.0.2 is a loopback address")):
        checking.addresses("127.0.0.2", 9000, allowed, "policy")


def test_a_public_name_passes_without_a_listing() -> None:
    assert check({"hooks.slack.com": ["52.1.2.3"]}).addresses("hooks.slack.com", 443, [], "policy") == [ip("52.1.2.3")]


def test_the_cache_keeps_an_answer_for_its_time_only() -> None:
    answers = iter([["1.1.1.1"], ["2.2.2.2"]])
    cached = CachedResolver(lambda _host, _port: [ip(a) for a in next(answers)], ttl=3600)
    assert cached("h", 1) == cached("h", 1) == [ip("1.1.1.1")]
    expired = CachedResolver(lambda _host, _port: [ip(a) for a in next(answers)], ttl=0)
    assert expired("h", 1) == [ip("2.2.2.2")]


def test_this_hosts_own_addresses_include_its_loopback_and_the_listeners() -> None:
    assert ip("127.0.0.1") in interface_addresses()
    own = OwnAddresses(["203.0.114.9", "0.0.0.0", "tao.example"])()
    assert {ip("127.0.0.1"), ip("203.0.114.9")} <= own


def test_destination_text_is_kept_for_messages() -> None:
    assert parse_destination(" 127.0.0.1:9000 ") == Destination("127.0.0.1:9000", network=ipaddress.ip_network("127.0.0.1/32"), port=9000)

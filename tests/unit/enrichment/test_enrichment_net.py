"""SSRF guard (issue: "SSRF guard (enrichment/net.py)")."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from enrichment.errors import SourceFailure
from enrichment.net import Resolver, Target, UrlGuard, is_public


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.1.1",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - a value under test, not a bind address
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a9fe:a9fe",
    ],
)
def test_non_public_addresses(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:2800:220:1:248:1893:25c8:1946"]
)
def test_public_addresses(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def check(guard: UrlGuard, host: str, port: int = 80) -> Target:
    return asyncio.run(guard.check(host, port))


def fake_dns(table: dict[str, list[str]]) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]

    return resolve


def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    guard = UrlGuard(resolver=fake_dns({"evil.example": ["10.1.2.3"]}))
    with pytest.raises(SourceFailure) as err:
        check(guard, "evil.example")
    assert err.value.code == "refused"


def test_one_private_address_among_public_ones_is_refused() -> None:
    guard = UrlGuard(resolver=fake_dns({"mixed.example": ["93.184.216.34", "127.0.0.1"]}))
    with pytest.raises(SourceFailure):
        check(guard, "mixed.example")


def test_public_name_is_pinned_to_the_checked_address() -> None:
    guard = UrlGuard(resolver=fake_dns({"ok.example": ["93.184.216.34"]}))
    assert check(guard, "OK.example").address == "93.184.216.34"


def test_unresolvable_name_is_not_found() -> None:
    with pytest.raises(SourceFailure) as err:
        check(UrlGuard(resolver=fake_dns({})), "nx.example")
    assert err.value.code == "not_found"


def test_allow_list_is_exact_host_and_port() -> None:
    guard = UrlGuard(["127.0.0.1:8080", "devbox"], resolver=fake_dns({"devbox": ["192.168.0.7"]}))
    assert check(guard, "127.0.0.1", 8080).address == "127.0.0.1"
    assert check(guard, "devbox", 1234).address == "192.168.0.7"  # host entry: any port
    for host, port in (("127.0.0.1", 8081), ("127.0.0.2", 8080), ("10.0.0.1", 8080)):
        with pytest.raises(SourceFailure):
            check(guard, host, port)


def test_metadata_endpoints_are_refused_even_when_allow_listed() -> None:
    guard = UrlGuard(
        ["169.254.169.254", "metadata.google.internal", "sneaky"],
        resolver=fake_dns({"sneaky": ["169.254.169.254"]}),
    )
    for host in ("169.254.169.254", "metadata.google.internal", "sneaky", "fd00:ec2::254"):
        with pytest.raises(SourceFailure) as err:
            check(guard, host)
        assert err.value.code == "refused"

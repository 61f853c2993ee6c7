"""The SSRF guard's edges (found by mutation testing, issue 13): scoped IPv6 answers, metadata
addresses hidden in NAT64 or scoped forms, bracketed IPv6 hosts and allow-list entries, the
exact target returned, and each refusal's code and the message the user sees."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from enrichment.errors import SourceFailure
from enrichment.net import Target, UrlGuard, is_metadata, is_public


class Dns:
    """A resolver from a table that records the ports it was asked for."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.ports: list[int] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.ports.append(port)
        if host not in self.table:
            raise OSError("no such host")
        return self.table[host]


def _check(guard: UrlGuard, host: str | None, port: int = 443) -> Target:
    return asyncio.run(guard.check(host, port))


def _refusal(guard: UrlGuard, host: str | None, port: int = 443) -> SourceFailure:
    with pytest.raises(SourceFailure) as err:
        _check(guard, host, port)
    return err.value


def test_the_target_is_the_lowercased_host_the_port_and_the_first_address() -> None:
    dns = Dns({"ok.example": ["93.184.216.34", "93.184.216.35"]})
    assert _check(UrlGuard(resolver=dns), "OK.Example", 8443) == Target(
        "ok.example", 8443, "93.184.216.34"
    )
    assert dns.ports == [8443]


def test_a_scoped_link_local_answer_is_refused_and_an_allow_listed_one_loses_its_scope() -> None:
    dns = Dns({"lan.example": ["fe80::1%eth0"], "dev.example": ["fe80::7%2"]})
    guard = UrlGuard(["dev.example"], resolver=dns)
    err = _refusal(guard, "lan.example")
    assert (err.code, err.message) == (
        "refused",
        "the website resolves to a private or reserved address",
    )
    assert _check(guard, "dev.example").address == "fe80::7"


@pytest.mark.parametrize(
    "address", ["fd00:ec2::254%eth0", "64:ff9b::a9fe:a9fe", "::ffff:169.254.169.254"]
)
def test_metadata_in_any_form_is_refused_even_when_allow_listed(address: str) -> None:
    assert is_metadata(ipaddress.ip_address(address))
    guard = UrlGuard(["sneaky.example"], resolver=Dns({"sneaky.example": [address]}))
    err = _refusal(guard, "sneaky.example")
    assert (err.code, err.message) == ("refused", "that address is not allowed")


def test_only_nat64_addresses_are_read_as_ipv4() -> None:
    # A public IPv6 address whose last 32 bits spell 10.0.0.1 is public; the same bits under
    # the NAT64 prefix are the private IPv4 address.
    assert is_public(ipaddress.ip_address("2606:4700::a00:1"))
    assert not is_public(ipaddress.ip_address("64:ff9b::a00:1"))
    assert is_public(ipaddress.ip_address("64:ff9b::5db8:d822"))  # 93.184.216.34


def test_multicast_is_not_public() -> None:
    # ipaddress counts multicast as "global": the guard's own test must refuse it.
    for address in ("224.0.0.1", "239.255.255.250", "ff0e::1"):
        assert not is_public(ipaddress.ip_address(address))


def test_bracketed_ipv6_hosts_and_allow_list_entries() -> None:
    guard = UrlGuard(["[::1]:8080"], resolver=Dns({}))
    assert _check(guard, "[::1]", 8080) == Target("::1", 8080, "::1")
    assert _check(guard, "::1", 8080).address == "::1"
    assert _refusal(guard, "[::1]", 8081).code == "refused"


def test_a_missing_host_is_invalid_input() -> None:
    for host in (None, ""):
        err = _refusal(UrlGuard(resolver=Dns({})), host)
        assert (err.code, err.message) == ("invalid_input", "the URL has no host")


@pytest.mark.parametrize("table", [{}, {"gone.example": []}])
def test_a_name_without_addresses_is_not_found(table: dict[str, list[str]]) -> None:
    err = _refusal(UrlGuard(resolver=Dns(table)), "gone.example")
    assert (err.code, err.message) == ("not_found", "the website's host name does not resolve")


def test_metadata_names_are_refused_before_resolving() -> None:
    dns = Dns({})
    err = _refusal(UrlGuard(["metadata.google.internal"], resolver=dns), "Metadata.Google.Internal")
    assert (err.code, err.message) == ("refused", "that address is not allowed")
    assert dns.ports == []


def test_only_brackets_are_stripped_from_the_host() -> None:
    dns = Dns({"xbox.example": ["93.184.216.34"]})
    assert _check(UrlGuard(resolver=dns), "[XBOX.example]").host == "xbox.example"

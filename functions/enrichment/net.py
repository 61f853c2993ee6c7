"""SSRF guard for URLs that come from users (the website source).

Every URL, and every redirect hop, is checked *before* connecting: the host is resolved here,
each address must be public, and the request is then pinned to the checked address (so a DNS
answer that changes between check and connect cannot point it elsewhere).

Non-public means loopback, private, link-local, multicast, reserved, unspecified, shared
(100.64/10) and the cloud metadata endpoints. ``EXTERNAL_DATA_ALLOW_HOSTS`` lists exact
``host`` or ``host:port`` entries that may resolve to such addresses (tests, local development);
metadata endpoints are refused even then.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from .errors import ErrorCode, SourceFailure

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata.google.internal.", "metadata", "metadata.goog"}
)
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("fd00:ec2::254"),
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")

Resolver = Callable[[str, int], Awaitable[list[str]]]

RESOLVER_THREADS = 16
"""Lookups of user-given names in flight at once, in the whole process."""
_RESOLVER_POOL = concurrent.futures.ThreadPoolExecutor(
    max_workers=RESOLVER_THREADS, thread_name_prefix="enrichment-dns"
)
"""Where ``system_resolver`` blocks: its own pool, never the event loop's default executor,
which ``asyncio.run`` joins at exit (a name the DNS took 12 s to answer held the enrichment for
12 s, whatever its deadline). Nobody waits for it: a lookup abandoned at the deadline finishes
here on its own, and a flood of slow names takes at most ``RESOLVER_THREADS`` threads (later
lookups queue, and those abandoned before they start never run)."""


async def system_resolver(host: str, port: int) -> list[str]:
    """All addresses ``host`` resolves to (``socket.getaddrinfo`` on ``_RESOLVER_POOL``); the
    wait ends when the caller is cancelled (the enrichment's deadline), the lookup need not."""
    lookup = functools.partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    infos = await asyncio.get_running_loop().run_in_executor(_RESOLVER_POOL, lookup)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _unwrap(ip: IPAddress) -> IPAddress:
    """The IPv4 address hidden in a v4-mapped or NAT64 IPv6 address, if any."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if ip.scope_id:
            return ipaddress.IPv6Address(str(ip).split("%", 1)[0])
    return ip


def is_metadata(ip: IPAddress) -> bool:
    """True for the cloud metadata endpoints."""
    return _unwrap(ip) in METADATA_ADDRESSES


def is_public(ip: IPAddress) -> bool:
    """True only for globally routable unicast addresses."""
    ip = _unwrap(ip)
    if (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or is_metadata(ip)
    ):
        return False
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return False
    return ip.is_global


@dataclass(frozen=True)
class Target:
    """A checked destination: connect to ``address`` (not to a fresh DNS answer)."""

    host: str
    port: int
    address: str


class UrlGuard:
    """Checks a host before any connection is made to it."""

    def __init__(self, allow_hosts: Iterable[str] = (), resolver: Resolver = system_resolver):
        self._allow = frozenset(h.strip().lower() for h in allow_hosts if h.strip())
        self._resolve = resolver

    def _allow_listed(self, host: str, port: int) -> bool:
        h = host.lower()
        hp = f"[{h}]:{port}" if ":" in h else f"{h}:{port}"
        return h in self._allow or hp in self._allow

    async def check(self, host: str | None, port: int) -> Target:
        """Resolve ``host`` and return the address to connect to; ``SourceFailure(refused)`` if
        it is not public (and not allow-listed), ``not_found`` if it does not resolve."""
        if not host:
            raise SourceFailure(ErrorCode.INVALID_INPUT, "the URL has no host")
        host = host.strip("[]").lower()
        if host in METADATA_HOSTS:
            raise SourceFailure(ErrorCode.REFUSED, "that address is not allowed")
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = await self._resolve(host, port)
            except (OSError, UnicodeError, ValueError):  # ValueError: a NUL in the name
                raise SourceFailure(
                    ErrorCode.NOT_FOUND, "the website's host name does not resolve"
                ) from None
            if not addresses:
                raise SourceFailure(ErrorCode.NOT_FOUND, "the website's host name does not resolve")
        allow_listed = self._allow_listed(host, port)
        for raw in addresses:
            ip = ipaddress.ip_address(raw.split("%", 1)[0])
            if is_metadata(ip):
                raise SourceFailure(ErrorCode.REFUSED, "that address is not allowed")
            # Every address must pass: a name resolving to one public and one private address
            # could otherwise be used to reach the private one.
            if not is_public(ip) and not allow_listed:
                raise SourceFailure(
                    ErrorCode.REFUSED, "the website resolves to a private or reserved address"
                )
        return Target(host=host, port=port, address=addresses[0].split("%", 1)[0])

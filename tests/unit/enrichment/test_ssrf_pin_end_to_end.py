"""The SSRF pin end to end (issue 13): the connection goes to the address the guard checked,
not to a fresh DNS answer (the DNS-rebinding defence), and the server still sees the original
``Host``. Checked with a real loopback server and the real httpx client.

The names below end in ``.test`` (RFC 6761): the system resolver never answers them, so the only
way a request can reach the loopback server is through the address the guard's resolver gave.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from enrichment.engine import EnrichmentInput
from enrichment.errors import SourceFailure
from enrichment.fetch import Deadline, Fetcher, FetchResponse
from enrichment.net import UrlGuard
from enrichment.sources.website import WebsiteSource
from scripts.devkit.fakes import FakeService, Reply, fake_website
from tests.unit.enrichment.helpers import make_engine


class Dns:
    """A resolver answering from a table, counting lookups; ``then`` is what a name resolves
    to after its first answer (a rebinding attacker's second answer)."""

    def __init__(self, table: dict[str, str], then: str | None = None) -> None:
        self.table = table
        self.then = then
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        if host not in self.table:
            raise OSError("no such host")
        first = host not in self.lookups
        self.lookups.append(host)
        return [self.table[host] if first or self.then is None else self.then]


ODD = "a\x7fb.test"
"""A name that parses and (here) resolves, which httpx refuses to put in a request."""


@pytest.fixture
def site() -> Iterator[FakeService]:
    port_box: list[int] = []

    def hop(_: object) -> Reply:
        return Reply(302, b"", {"Location": f"http://second.test:{port_box[0]}/about"})

    def away(_: object) -> Reply:
        return Reply(302, b"", {"Location": f"http://intranet.test:{port_box[0]}/secret"})

    def odd(_: object) -> Reply:
        return Reply(302, b"", {"Location": f"http://{ODD}:{port_box[0]}/"})

    with fake_website(routes={"/hop": hop, "/away": away, "/odd": odd}) as url:
        port_box.append(int(url.host_port.rsplit(":", 1)[1]))
        yield url


def _port(site: FakeService) -> int:
    return int(site.host_port.rsplit(":", 1)[1])


def _fetch(url: str, guard: UrlGuard, redirects: int = 0) -> FetchResponse:
    async def go() -> FetchResponse:
        async with httpx.AsyncClient() as client:
            fetcher = Fetcher(client, Deadline(20), attempts=1)
            return await fetcher.get(url, guard=guard, max_redirects=redirects)

    return asyncio.run(go())


def test_the_connection_goes_to_the_checked_address_with_the_original_host(
    site: FakeService,
) -> None:
    port = _port(site)
    dns = Dns({"portfolio.test": "127.0.0.1"})
    guard = UrlGuard([f"portfolio.test:{port}"], resolver=dns)
    resp = _fetch(f"http://portfolio.test:{port}/", guard)
    assert resp.status == 200 and b"<html" in resp.body.lower()
    assert resp.url == f"http://portfolio.test:{port}/"  # the logical URL, not the address
    assert [r.path for r in site.requests] == ["/"]
    assert site.requests[0].headers["host"] == f"portfolio.test:{port}"
    assert dns.lookups == ["portfolio.test"]  # checked once; the connection reused the answer


def test_userinfo_never_reaches_the_host_header(site: FakeService) -> None:
    port = _port(site)
    guard = UrlGuard([f"portfolio.test:{port}"], resolver=Dns({"portfolio.test": "127.0.0.1"}))
    assert _fetch(f"http://ann:pw@portfolio.test:{port}/", guard).status == 200
    assert site.requests[0].headers["host"] == f"portfolio.test:{port}"


def test_a_rebinding_answer_after_the_check_is_never_used(site: FakeService) -> None:
    port = _port(site)
    # The first answer is the allow-listed loopback; every later one is the metadata server.
    dns = Dns({"portfolio.test": "127.0.0.1"}, then="169.254.169.254")
    guard = UrlGuard([f"portfolio.test:{port}"], resolver=dns)
    assert _fetch(f"http://portfolio.test:{port}/", guard).status == 200
    assert len(site.requests) == 1 and dns.lookups == ["portfolio.test"]
    # A second fetch is checked again, sees the rebound address and never connects.
    with pytest.raises(SourceFailure) as err:
        _fetch(f"http://portfolio.test:{port}/projects/", guard)
    assert err.value.code == "refused" and len(site.requests) == 1


def test_each_redirect_hop_is_checked_and_pinned_with_its_own_host(site: FakeService) -> None:
    port = _port(site)
    dns = Dns({"portfolio.test": "127.0.0.1", "second.test": "127.0.0.1"})
    guard = UrlGuard([f"portfolio.test:{port}", f"second.test:{port}"], resolver=dns)
    resp = _fetch(f"http://portfolio.test:{port}/hop", guard, redirects=2)
    assert resp.status == 200 and resp.url == f"http://second.test:{port}/about"
    assert [(r.path, r.headers["host"]) for r in site.requests] == [
        ("/hop", f"portfolio.test:{port}"),
        ("/about", f"second.test:{port}"),
    ]
    assert dns.lookups == ["portfolio.test", "second.test"]


def test_a_redirect_to_a_private_name_is_refused_before_connecting(site: FakeService) -> None:
    port = _port(site)
    dns = Dns({"portfolio.test": "127.0.0.1", "intranet.test": "10.1.2.3"})
    guard = UrlGuard([f"portfolio.test:{port}"], resolver=dns)
    with pytest.raises(SourceFailure) as err:
        _fetch(f"http://portfolio.test:{port}/away", guard, redirects=2)
    assert err.value.code == "refused"
    assert [r.path for r in site.requests] == ["/away"]


def test_the_website_source_reaches_the_site_only_through_the_pinned_address(
    site: FakeService,
) -> None:
    port = _port(site)
    dns = Dns({"portfolio.test": "127.0.0.1"})
    engine = make_engine(
        sources={"website": WebsiteSource()},
        allow_hosts=(f"portfolio.test:{port}",),
    )
    engine.guard = UrlGuard([f"portfolio.test:{port}"], resolver=dns)
    result = engine.enrich(
        EnrichmentInput(sources=("website",), website=f"http://portfolio.test:{port}/")
    )
    report = result.sources[0]
    assert report.status == "success", report.error
    assert result.data["website"]["pages"]
    assert site.requests and {r.headers["host"] for r in site.requests} == {
        f"portfolio.test:{port}"
    }
    assert set(dns.lookups) == {"portfolio.test"}


def test_an_internationalised_name_is_fetched_with_its_ascii_host_header(
    site: FakeService,
) -> None:
    """A URL the parser accepts with a non-ASCII host (``bücher.test``) is fetched: the
    ``Host`` header carries the IDNA form, which HTTP requires. The raw name made every such
    fetch fail as ``upstream`` before connecting: quota given back, and a source breaker one
    user could open."""
    port = _port(site)
    dns = Dns({"bücher.test": "127.0.0.1"})
    guard = UrlGuard([f"bücher.test:{port}"], resolver=dns)
    resp = _fetch(f"http://Bücher.test:{port}/", guard)
    assert resp.status == 200
    assert site.requests[0].headers["host"] == f"xn--bcher-kva.test:{port}"


def test_the_website_source_reads_a_site_under_an_internationalised_name(
    site: FakeService,
) -> None:
    port = _port(site)
    engine = make_engine(sources={"website": WebsiteSource()}, allow_hosts=(f"bücher.test:{port}",))
    engine.guard = UrlGuard([f"bücher.test:{port}"], resolver=Dns({"bücher.test": "127.0.0.1"}))
    result = engine.enrich(
        EnrichmentInput(sources=("website",), website=f"http://bücher.test:{port}/")
    )
    assert result.sources[0].status == "success", result.sources[0].error
    assert {r.headers["host"] for r in site.requests} == {f"xn--bcher-kva.test:{port}"}


def test_a_url_that_cannot_be_requested_is_the_callers_input_and_a_redirects_the_services(
    site: FakeService,
) -> None:
    """Whose fault a URL is decides what it moves: ``upstream`` gives the quota unit back and
    counts toward the source's breaker, so one user's URL must never be ``upstream``."""
    port = _port(site)
    odd = ODD
    dns = Dns({odd: "127.0.0.1", "portfolio.test": "127.0.0.1"})
    guard = UrlGuard([f"{odd}:{port}", f"portfolio.test:{port}"], resolver=dns)
    with pytest.raises(SourceFailure) as first:
        _fetch(f"http://{odd}:{port}/", guard)
    assert first.value.code == "invalid_input" and not site.requests
    with pytest.raises(SourceFailure) as redirected:
        _fetch(f"http://portfolio.test:{port}/odd", guard, redirects=2)
    assert redirected.value.code == "upstream"
    assert [r.path for r in site.requests] == ["/odd"]

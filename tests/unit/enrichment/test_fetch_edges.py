"""The fetcher's edges (found by mutation testing, issue 13): schemes, the ports the guard
checks, what the server sees (User-Agent, Accept-Encoding, Host without userinfo), SNI for
https, how many redirects are followed, the backoff's exact waits and the failures' messages.
A loopback server everywhere but SNI, which only an https request carries: there an
``httpx.MockTransport`` stands in for the remote server to show the request as sent."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from enrichment.errors import SourceFailure
from enrichment.fetch import Deadline, Fetcher, FetchResponse
from enrichment.net import UrlGuard
from scripts.devkit.fakes import FakeService, Reply, fake_website


class Dns:
    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        return [self.table[host]]


def _get(
    url: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    attempts: int = 1,
    waits: list[float] | None = None,
    **kw: Any,
) -> FetchResponse:
    async def sleep(s: float) -> None:
        (waits if waits is not None else []).append(s)

    async def go() -> FetchResponse:
        async with httpx.AsyncClient(transport=transport) as client:
            f = Fetcher(
                client,
                Deadline(20),
                attempts=attempts,
                base_delay_s=0.1,
                rng=random.Random(3),
                sleep=sleep,
            )
            return await f.get(url, **kw)

    return asyncio.run(go())


def _fail(call: Callable[[], Any]) -> SourceFailure:
    with pytest.raises(SourceFailure) as err:
        call()
    return err.value


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://x/"])
def test_only_http_and_https_are_fetched(url: str) -> None:
    err = _fail(lambda: _get(url))
    assert (err.code, err.message) == ("refused", "only http and https URLs are fetched")


def test_the_guard_checks_the_default_port_of_each_scheme() -> None:
    dns = Dns({"a.test": "127.0.0.1"})
    guard = UrlGuard(["a.test"], resolver=dns)
    for url in ("http://a.test/", "https://a.test/"):
        with contextlib.suppress(SourceFailure):  # whether anything listens there is moot
            _get(url, guard=guard)
    assert dns.asked == [("a.test", 80), ("a.test", 443)]


def test_https_through_the_guard_names_the_host_for_sni_and_plain_http_does_not() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, stream=httpx.ByteStream(b"ok"))

    guard = UrlGuard(["a.test"], resolver=Dns({"a.test": "127.0.0.1"}))
    transport = httpx.MockTransport(handler)
    _get("https://a.test/x", transport=transport, guard=guard)
    _get("http://a.test/x", transport=transport, guard=guard)
    https, http = seen
    assert str(https.url) == "https://127.0.0.1/x" and https.headers["host"] == "a.test"
    assert https.extensions.get("sni_hostname") == "a.test"
    assert "sni_hostname" not in http.extensions


@pytest.fixture
def site() -> Any:
    def hop(n: int) -> Reply:
        return Reply(302, b"", {"Location": f"/r{n + 1}"})

    routes: dict[str, Any] = {f"/r{n}": hop(n) for n in range(1, 4)}
    routes["/r4"] = Reply(200, b"landed")
    with fake_website(routes=routes) as url:
        yield url


def test_the_server_sees_our_user_agent_and_encodings(site: FakeService) -> None:
    _get(f"{site}/")
    headers = site.requests[0].headers
    assert headers["user-agent"] == "cv-enrichment/1.0"
    assert headers["accept-encoding"] == "gzip, deflate"


def test_userinfo_with_an_at_sign_never_reaches_the_host_header(site: FakeService) -> None:
    port = site.host_port.rsplit(":", 1)[1]
    guard = UrlGuard([f"a.test:{port}"], resolver=Dns({"a.test": "127.0.0.1"}))
    assert _get(f"http://u:p@ss@a.test:{port}/", guard=guard).status == 200
    assert site.requests[0].headers["host"] == f"a.test:{port}"


def test_redirects_are_not_followed_unless_asked(site: FakeService) -> None:
    assert _get(f"{site}/r1").status == 302
    assert len(site.requests) == 1


def test_exactly_max_redirects_are_followed(site: FakeService) -> None:
    resp = _get(f"{site}/r1", max_redirects=3)
    assert resp.status == 200 and resp.body == b"landed" and resp.url == f"{site}/r4"
    err = _fail(lambda: _get(f"{site}/r1", max_redirects=2))
    assert (err.code, err.message) == ("upstream", "too many redirects")
    assert [r.path for r in site.requests][-3:] == ["/r1", "/r2", "/r3"]
    one = _get(f"{site}/r3", max_redirects=1)
    assert one.status == 200


def test_the_backoff_waits_are_exact_and_none_after_the_last_try() -> None:
    with fake_website(fail_always=True, fail_status=503) as url:
        waits: list[float] = []
        resp = _get(f"{url}/", attempts=4, waits=waits)
        assert len(url.requests) == 4
    expected_rng = random.Random(3)
    expected = [expected_rng.uniform(0, min(5.0, 0.1 * 2**i)) for i in range(3)]
    assert resp.status == 503 and waits == expected


def test_a_dead_service_is_named_in_the_message() -> None:
    with fake_website() as url:
        dead = str(url)
    err = _fail(lambda: _get(f"{dead}/", attempts=2))
    assert (err.code, err.message) == ("upstream", "could not connect to 127.0.0.1")


def test_a_slow_service_is_named_in_the_message() -> None:
    async def go() -> FetchResponse:
        async with httpx.AsyncClient() as client:
            return await Fetcher(client, Deadline(0.3)).get(url_box[0])

    with fake_website(delay_s=2) as url:
        url_box = [f"{url}/"]
        err = _fail(lambda: asyncio.run(go()))
    assert (err.code, err.message) == ("timeout", "127.0.0.1 did not answer in time")

"""Bounded bytes (issue 8): the decoded body is capped across every encoding layer, stacked
encodings are refused, and URLs or headers that do not parse are source errors, not crashes.

Before the fix, a 1.8 KB response with ``Content-Encoding: gzip, gzip`` used about 2 GiB.
"""

from __future__ import annotations

import asyncio
import gzip
import random
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from enrichment.errors import ErrorCode, SourceFailure
from enrichment.fetch import Deadline, Fetcher, FetchResponse, TooLarge, retry_after_seconds
from enrichment.net import UrlGuard
from scripts.devkit.fakes import Reply, fake_website

MB = 1024 * 1024


def get(url: str, **kw: Any) -> FetchResponse:
    async def go() -> FetchResponse:
        async with httpx.AsyncClient() as client:
            f = Fetcher(client, Deadline(5), attempts=1, rng=random.Random(1))
            return await f.get(url, **kw)

    return asyncio.run(go())


def peak_of(fn: Callable[[], object]) -> tuple[object, int]:
    tracemalloc.start()
    try:
        try:
            out: object = fn()
        except Exception as exc:  # noqa: BLE001 - returned for the test to inspect
            out = exc
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def gzip_bomb(inflated: int, layers: int = 1) -> bytes:
    body = b"\0" * inflated
    for _ in range(layers):
        body = gzip.compress(body, 9)
    return body


def test_stacked_gzip_is_refused_without_inflating_it() -> None:
    bomb = gzip_bomb(200 * MB, layers=2)
    assert len(bomb) < 300_000
    route = Reply(200, bomb, {"Content-Encoding": "gzip, gzip", "Content-Type": "text/html"})
    with fake_website(routes={"/": route}) as url:
        err, peak = peak_of(lambda: get(f"{url}/", max_bytes=1_000_000))
    assert isinstance(err, SourceFailure) and err.code is ErrorCode.UPSTREAM
    assert not isinstance(err, TooLarge)  # refused for the stacking, not for the size
    assert peak < 16 * MB, peak


def test_two_different_codings_are_refused_too() -> None:
    body = zlib.compress(gzip.compress(b"<p>hi</p>"))
    route = Reply(200, body, {"Content-Encoding": "gzip, deflate"})
    with fake_website(routes={"/": route}) as url, pytest.raises(SourceFailure) as err:
        get(f"{url}/")
    assert err.value.code is ErrorCode.UPSTREAM


def test_a_single_gzip_bomb_is_cut_at_the_limit_with_bounded_memory() -> None:
    route = Reply(200, gzip_bomb(100 * MB), {"Content-Encoding": "gzip"})
    with fake_website(routes={"/": route}) as url:
        err, peak = peak_of(lambda: get(f"{url}/", max_bytes=1_000_000))
    assert isinstance(err, TooLarge) and err.code is ErrorCode.UPSTREAM
    assert peak < 8 * MB, peak


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send
        ("identity", lambda b: b),
        ("GZIP ", gzip.compress),
    ],
)
def test_one_coding_is_decoded(coding: str, encode: Callable[[bytes], bytes]) -> None:
    page = b"<html><p>" + b"hello " * 5000 + b"</p></html>"
    route = Reply(200, encode(page), {"Content-Encoding": coding})
    with fake_website(routes={"/": route}) as url:
        resp = get(f"{url}/", max_bytes=1_000_000)
    assert resp.body == page


def test_exactly_the_limit_passes_and_one_more_byte_does_not() -> None:
    routes = {
        "/ok": Reply(200, gzip.compress(b"x" * 1000), {"Content-Encoding": "gzip"}),
        "/big": Reply(200, gzip.compress(b"x" * 1001), {"Content-Encoding": "gzip"}),
    }
    with fake_website(routes=routes) as url:
        assert len(get(f"{url}/ok", max_bytes=1000).body) == 1000
        with pytest.raises(TooLarge):
            get(f"{url}/big", max_bytes=1000)


@pytest.mark.parametrize("coding", ["br", "compress", "zstd", "gzip;q=1"])
def test_unknown_codings_are_upstream(coding: str) -> None:
    route = Reply(200, b"\x00\x01garbage", {"Content-Encoding": coding})
    with fake_website(routes={"/": route}) as url, pytest.raises(SourceFailure) as err:
        get(f"{url}/")
    assert err.value.code is ErrorCode.UPSTREAM


def test_corrupt_compressed_bodies_are_upstream() -> None:
    route = Reply(200, b"\x1f\x8b\x08\x00garbage-not-gzip" * 10, {"Content-Encoding": "gzip"})
    with fake_website(routes={"/": route}) as url, pytest.raises(SourceFailure) as err:
        get(f"{url}/")
    assert err.value.code is ErrorCode.UPSTREAM


@pytest.mark.parametrize(
    "location", ["http://[", "http://[::1", "http://host:99999999/", "http://h:port/", "//[x"]
)
def test_an_unparseable_location_is_upstream(location: str) -> None:
    route = Reply(302, b"", {"Location": location})
    with fake_website(routes={"/": route}) as url:
        guard = UrlGuard([url.host_port])
        with pytest.raises(SourceFailure) as err:
            get(f"{url}/", guard=guard, max_redirects=3)
    assert err.value.code in (ErrorCode.UPSTREAM, ErrorCode.REFUSED, ErrorCode.INVALID_INPUT)


@pytest.mark.parametrize(
    "url",
    ["http://[", "http://[::1/", "http://a b/", "http://host:-1/", "http://\udcff/", "http:///x"],
)
def test_urls_that_do_not_parse_are_source_errors(url: str) -> None:
    for guard in (None, UrlGuard()):
        with pytest.raises(SourceFailure):
            get(url, guard=guard)


@pytest.mark.parametrize(
    "value", ["\u00b2", "\uff11\uff12", "9" * 400, "Fri, 99 Foo 99999 99:99:99 GMT", "-1"]
)
def test_odd_retry_after_values_do_not_crash(value: str) -> None:
    wait = retry_after_seconds(httpx.Headers([(b"retry-after", value.encode())]))
    assert wait is None or wait >= 0


def test_deeply_nested_json_is_malformed_not_a_recursion_error() -> None:
    resp = FetchResponse(200, httpx.Headers(), b"[" * 100_000 + b"]" * 100_000, "http://x/")
    with pytest.raises(SourceFailure) as err:
        resp.json()
    assert err.value.code is ErrorCode.UPSTREAM

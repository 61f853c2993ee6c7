"""The retrying, size-bounded GET (issue: "GETs are retried with exponential backoff + jitter")."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest

from enrichment.errors import SourceFailure
from enrichment.fetch import Deadline, Fetcher, FetchResponse
from scripts.devkit.fakes import Reply, fake_website


def get(
    url: str, *, deadline_s: float = 5.0, attempts: int = 4, **kw: Any
) -> tuple[FetchResponse, list[float]]:
    waits: list[float] = []

    async def fake_sleep(s: float) -> None:
        waits.append(s)

    async def go() -> FetchResponse:
        async with httpx.AsyncClient() as client:
            f = Fetcher(
                client,
                Deadline(deadline_s),
                attempts=attempts,
                base_delay_s=0.1,
                rng=random.Random(3),
                sleep=fake_sleep,
            )
            return await f.get(url, **kw)

    return asyncio.run(go()), waits


def test_backoff_grows_exponentially_with_jitter() -> None:
    with fake_website(fail_first=3, fail_status=503) as url:
        resp, waits = get(f"{url}/")
    assert resp.status == 200 and len(waits) == 3
    for i, w in enumerate(waits):
        assert 0 <= w <= 0.1 * 2**i


def test_retry_after_is_honoured_when_it_fits_the_deadline() -> None:
    with fake_website(fail_first=1, fail_status=429, fail_headers={"Retry-After": "2"}) as url:
        resp, waits = get(f"{url}/", deadline_s=5)
    assert resp.status == 200 and waits == [2.0]


def test_retry_after_past_the_deadline_returns_the_answer_at_once() -> None:
    with fake_website(fail_always=True, fail_status=503, fail_headers={"Retry-After": "30"}) as url:
        resp, waits = get(f"{url}/", deadline_s=5)
        assert len(url.requests) == 1
    assert resp.status == 503 and waits == []


def test_client_errors_are_not_retried() -> None:
    with fake_website() as url:
        resp, waits = get(f"{url}/missing")
        assert len(url.requests) == 1
    assert resp.status == 404 and waits == []


def test_declared_oversized_body_is_refused_before_reading() -> None:
    with (
        fake_website(routes={"/big": Reply(200, b"x" * 50_000)}) as url,
        pytest.raises(SourceFailure) as err,
    ):
        get(f"{url}/big", max_bytes=10_000)
    assert err.value.code == "upstream"


def test_connection_refused_is_retried_then_upstream() -> None:
    with fake_website() as url:
        dead = str(url)
    with pytest.raises(SourceFailure) as err:
        get(f"{dead}/", attempts=2)
    assert err.value.code == "upstream"


def test_slow_answer_past_the_deadline_is_timeout() -> None:
    with fake_website(delay_s=1) as url, pytest.raises(SourceFailure) as err:
        get(f"{url}/", deadline_s=0.2)
    assert err.value.code == "timeout"

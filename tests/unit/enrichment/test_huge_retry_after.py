"""A ``Retry-After`` of any size is a ``quota`` answer, never a crash of the source: GitHub or
the web provider answering 429 with "999999999999" (no ``X-RateLimit-Reset``) made
``now + timedelta(seconds=wait)`` overflow and the call end ``internal``."""

from __future__ import annotations

import httpx
import pytest

from common.settings import EnrichmentSettings
from enrichment.engine import EnrichmentInput
from enrichment.fetch import MAX_RETRY_AFTER_S, retry_after_seconds
from enrichment.sources.github import GitHubSource
from enrichment.sources.web import WebSearchSource
from scripts.devkit.fakes import Reply, serve
from tests.unit.enrichment.helpers import error_of, make_engine

HUGE = "999999999999"


@pytest.mark.parametrize(
    "value", [HUGE, "9" * 400, "Fri, 31 Dec 9999 23:59:59 GMT", str(int(MAX_RETRY_AFTER_S) + 1)]
)
def test_retry_after_is_clamped_to_a_day(value: str) -> None:
    headers = httpx.Headers([(b"retry-after", value.encode())])
    assert retry_after_seconds(headers) == MAX_RETRY_AFTER_S


def test_a_small_retry_after_is_kept() -> None:
    assert retry_after_seconds(httpx.Headers({"retry-after": "120"})) == 120.0


def test_github_429_with_a_huge_retry_after_is_quota() -> None:
    reply = Reply(429, {"message": "slow down"}, {"Retry-After": HUGE})
    with serve(lambda rec: reply) as url:
        engine = make_engine(sources={"github": GitHubSource()}, github_api_url=url)
        result = engine.enrich(EnrichmentInput(sources=("github",), github="octocat"))
    report = result.sources[0]
    assert (report.status, error_of(report).code) == ("failed", "quota")
    assert "2026-11-27T12:00:00Z" in error_of(report).message  # now (injected) + one day
    assert not error_of(report).crashed and not result.service_failure


def test_web_search_429_with_a_huge_retry_after_is_quota() -> None:
    reply = Reply(429, {"type": "ErrorResponse"}, {"Retry-After": HUGE})
    with serve(lambda rec: reply) as url:
        settings = EnrichmentSettings(web_search_url=url, web_search_api_key="k")
        engine = make_engine(sources={"web": WebSearchSource.from_settings(settings)})
        result = engine.enrich(EnrichmentInput(sources=("web",), name="Jane Doe"))
    report = result.sources[0]
    assert (report.status, error_of(report).code) == ("failed", "quota")
    assert "2026-11-27T12:00:00Z" in error_of(report).message
    assert not error_of(report).crashed

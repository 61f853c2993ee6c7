"""Web search source and its Brave provider (issue: "Web search")."""

from __future__ import annotations

import json
from typing import Any

from common.settings import EnrichmentSettings
from enrichment.cache import MemoryCacheStore
from enrichment.engine import EnrichmentInput
from enrichment.model import EnrichmentResult
from enrichment.sources.web import MAX_NAME_CHARS, WebSearchSource
from scripts.devkit.fakes import fake_brave
from tests.support.clock import FakeClock
from tests.unit.enrichment.helpers import error_of, make_engine


def search(
    url: str,
    name: str | None = "Ada Lovelace",
    key: str | None = "test-brave-key",
    **overrides: Any,
) -> EnrichmentResult:
    settings = EnrichmentSettings(web_search_url=url, web_search_api_key=key)
    engine = make_engine(sources={"web": WebSearchSource.from_settings(settings)}, **overrides)
    return engine.enrich(EnrichmentInput(sources=("web",), name=name, timeout_ms=2000))


def test_results_are_parsed_and_redacted() -> None:
    with fake_brave() as url:
        result = search(url)
        req = url.requests[0]
    assert req.path == "/res/v1/web/search" and req.query["q"] == ['"Ada Lovelace"']
    assert req.headers["x-subscription-token"] == "test-brave-key"
    report = result.sources[0]
    assert (report.status, report.items) == ("success", 3)
    results = result.data["web"]["results"]
    assert results[1] == {
        "title": "octocat (Ada Lovelace) · GitHub",
        "url": "https://github.com/octocat",
        "snippet": "octocat has 5 repositories available. Follow their code on GitHub.",
    }
    text = json.dumps(results)
    assert "ada@example.org" not in text and "7946" not in text and "<strong>" not in text


def test_without_a_key_the_source_is_skipped_and_nothing_is_asked() -> None:
    with fake_brave() as url:
        report = search(url, key=None).sources[0]
        assert url.requests == []
    assert (report.status, error_of(report).code) == ("skipped", "not_configured")


def test_without_a_name_the_source_is_skipped() -> None:
    with fake_brave() as url:
        report = search(url, name=None).sources[0]
    assert (report.status, error_of(report).code) == ("skipped", "invalid_input")


def test_quota_is_reported_with_the_retry_time() -> None:
    with fake_brave(quota=True) as url:
        report = search(url).sources[0]
    assert (report.status, error_of(report).code) == ("failed", "quota")
    assert "2026-11-26T13:00:00Z" in error_of(report).message


def test_rejected_key_is_upstream() -> None:
    with fake_brave(api_key="other") as url:
        report = search(url).sources[0]
    assert (report.status, error_of(report).code) == ("failed", "upstream")


def test_malformed_json_is_upstream() -> None:
    with fake_brave(malformed=True) as url:
        report = search(url).sources[0]
    assert (report.status, error_of(report).code) == ("failed", "upstream")


def test_same_name_differently_spaced_hits_the_cache(
    cache: MemoryCacheStore, clock: FakeClock
) -> None:
    settings = EnrichmentSettings(web_search_api_key="test-brave-key")
    with fake_brave() as url:
        settings = EnrichmentSettings(web_search_url=url, web_search_api_key="test-brave-key")
        engine = make_engine(clock, cache, {"web": WebSearchSource.from_settings(settings)})
        engine.enrich(EnrichmentInput(sources=("web",), name="Ada Lovelace"))
        again = engine.enrich(EnrichmentInput(sources=("web",), name="  ada   LOVELACE "))
        assert len(url.requests) == 1
    assert again.sources[0].cached is True


def test_any_name_the_request_parser_accepts_is_searched() -> None:
    """The parser takes names of up to 200 characters; the source measured the name after
    casefold, so "ß" * 150 (folded: 300 characters) was refused as too long."""
    from usecases.requests import parse_enrich

    names = ["ß" * 150, "ß" * MAX_NAME_CHARS, "ΐ" * MAX_NAME_CHARS]  # ΐ folds to 3 characters
    with fake_brave() as url:
        for name in names:
            assert parse_enrich({"cvId": "c", "name": name}).name == name
            report = search(url, name=name).sources[0]
            assert report.status == "success", (name[:3], report.error)
        asked = [r.query["q"] for r in url.requests]
    assert asked == [[f'"{name}"'] for name in names]


def test_a_name_longer_than_the_parser_takes_is_refused() -> None:
    with fake_brave() as url:
        report = search(url, name="a" * (MAX_NAME_CHARS + 1)).sources[0]
        assert url.requests == []
    assert (report.status, error_of(report).code) == ("failed", "invalid_input")

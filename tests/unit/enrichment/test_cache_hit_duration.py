"""A cache hit's ``durationMs`` is the cache look-up's time (``SourceReport.duration_ms``: "cache
look-up included"), not 0: a store taking 60 ms to answer showed 0 ms beside a 60 ms call."""

from __future__ import annotations

import time

import pytest

from enrichment.cache import CacheEntry, MemoryCacheStore
from enrichment.engine import EnrichmentInput
from enrichment.sources.github import GitHubSource
from scripts.devkit.fakes import fake_github
from tests.unit.enrichment.helpers import make_engine

SLOW_S = 0.06


class SlowCache(MemoryCacheStore):
    """Reads take ``SLOW_S``."""

    def get_many(self, keys: list[str]) -> dict[str, CacheEntry | None]:
        time.sleep(SLOW_S)
        return super().get_many(keys)


@pytest.mark.parametrize("ahead", [False, True])
def test_a_cache_hit_reports_the_time_of_its_look_up(ahead: bool) -> None:
    cache = SlowCache()
    inp = EnrichmentInput(sources=("github",), github="octocat")
    with fake_github() as url:
        engine = make_engine(cache=cache, sources={"github": GitHubSource()}, github_api_url=url)
        engine.enrich(inp)  # fills the cache
        result = engine.enrich(inp, engine.read_ahead(inp)) if ahead else engine.enrich(inp)
    report = result.sources[0]
    assert report.cached
    assert SLOW_S * 1000 <= report.duration_ms <= result.duration_ms

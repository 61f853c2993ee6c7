"""A stale entry revalidated by GitHub (conditional requests answered 304) asked the source: in
the records it is a try, not a cache hit. It was counted in ``cacheHits``, which the breaker
takes off both tries and successes (``breakers._tally``), so 7 revalidated successes and 5
upstream failures a minute (42% failing) read as 100% failing and could open the breaker. The
answer still says ``cached: true`` (its data is the cached copy, docs/api.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from enrichment.cache import MemoryCacheStore
from enrichment.engine import EnrichmentInput
from enrichment.model import SourceReport
from enrichment.sources.github import GitHubSource
from gating.rollout import RolloutConfig
from recording.recorder import _source_counters
from rollout_control.breakers import assess_breakers
from scripts.devkit.fakes import Reply, fake_github, serve
from stores.base import Inc
from tests.support.clock import FakeClock
from tests.unit.enrichment.helpers import T0, make_engine
from usecases.answer import source_outcome


def _revalidated() -> SourceReport:
    clock = FakeClock(T0)
    with fake_github() as url:
        engine = make_engine(
            clock, MemoryCacheStore(), {"github": GitHubSource()}, github_api_url=url
        )
        engine.enrich(EnrichmentInput(sources=("github",), github="octocat"))
        clock.advance(hours=2)
        n = len(url.requests)
        report = engine.enrich(EnrichmentInput(sources=("github",), github="octocat")).sources[0]
        assert len(url.requests) - n == 2  # two conditional requests, both 304
    return report


def _failed() -> SourceReport:
    with serve(lambda rec: Reply(502, {})) as url:
        engine = make_engine(sources={"github": GitHubSource()}, github_api_url=url)
        return engine.enrich(EnrichmentInput(sources=("github",), github="octocat")).sources[0]


def _add(bucket: dict[str, Any], counters: dict[str, Any]) -> None:
    for key, value in counters.items():
        if isinstance(value, Inc):
            bucket[key] = bucket.get(key, 0) + value.by
        else:
            _add(bucket.setdefault(key, {}), value)


def test_a_revalidation_is_cached_in_the_answer_but_a_try_in_the_records() -> None:
    report = _revalidated()
    assert report.to_dict()["cached"] is True and report.revalidated
    counters = _source_counters([source_outcome(report)])["github"]
    assert "cacheHits" not in counters
    assert (counters["requests"].by, counters["successful"].by) == (1, 1)


def test_revalidated_successes_keep_the_breaker_closed_beside_a_minority_of_failures() -> None:
    ok, bad = source_outcome(_revalidated()), source_outcome(_failed())
    now = T0.replace(second=5)
    buckets: dict[Any, dict[str, Any]] = {}
    for m in range(1, 6):
        bucket: dict[str, Any] = {}
        for _ in range(7):
            _add(bucket, {"src": _source_counters([ok])})
        for i in range(5):
            _add(bucket, {"src": _source_counters([bad])})
            _add(bucket, {"srcFailedUsers": {"github": {f"user{i}": Inc(1)}}})
        buckets[now.replace(second=0) - timedelta(minutes=m)] = bucket
    assert buckets[T0 - timedelta(minutes=1)]["src"]["github"]["requests"] == 12
    assert assess_breakers(RolloutConfig(), buckets, now) == []

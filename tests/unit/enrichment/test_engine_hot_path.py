"""Issue 11: an enrichment answered from the cache reads it in one round trip, on the caller's
thread or ahead on the cache pool (overlapping the caller's increment), and starts no event
loop; a loop is started only when a source must be fetched."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from enrichment.cache import CacheEntry, MemoryCacheStore
from enrichment.engine import CACHE_READ_GRACE_S, EnrichmentInput
from enrichment.sources.linkedin import LinkedInSource
from tests.unit.enrichment.helpers import make_engine

SKILLS = {"Skills.csv": "Name\nJS\nTypeScript\n"}


class Watched(MemoryCacheStore):
    """Notes the thread of each read, and whether an event loop was running on it."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, bool, int]] = []

    def get_many(self, keys: list[str]) -> dict[str, CacheEntry | None]:
        try:
            asyncio.get_running_loop()
            in_loop = True
        except RuntimeError:
            in_loop = False
        self.reads.append((threading.current_thread().name, in_loop, len(keys)))
        return super().get_many(keys)


def _no_loops(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    started: list[Any] = []
    real = asyncio.run

    def run(main: Any, **kw: Any) -> Any:
        started.append(main)
        return real(main, **kw)

    monkeypatch.setattr(asyncio, "run", run)
    return started


def test_a_cache_hit_reads_on_the_callers_thread_and_starts_no_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = Watched()
    engine = make_engine(cache=cache, sources={"linkedin": LinkedInSource()})
    inp = EnrichmentInput(sources=("linkedin", "github"), linkedin_export=SKILLS)
    started = _no_loops(monkeypatch)
    first = engine.enrich(inp)  # a miss: LinkedIn is parsed, in a loop
    assert first.sources[0].cached is False and len(started) == 1
    second = engine.enrich(inp)
    assert second.sources[0].cached is True and second.data == first.data
    assert second.sources[1].status == "skipped"  # github: not configured here
    assert len(started) == 1  # no loop for the hit
    here = threading.current_thread().name
    assert cache.reads == [(here, False, 1), (here, False, 1)]


def test_force_refresh_reads_nothing_and_fetches(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = Watched()
    engine = make_engine(cache=cache, sources={"linkedin": LinkedInSource()})
    started = _no_loops(monkeypatch)
    inp = EnrichmentInput(sources=("linkedin",), linkedin_export=SKILLS, force_refresh=True)
    assert engine.enrich(inp).sources[0].cached is False
    assert engine.enrich(inp).sources[0].cached is False
    assert cache.reads == [] and len(started) == 2


def test_nothing_to_fetch_starts_no_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = Watched()
    engine = make_engine(cache=cache, sources={"linkedin": LinkedInSource()})
    started = _no_loops(monkeypatch)
    result = engine.enrich(EnrichmentInput(sources=("linkedin",)))  # no export given
    assert result.sources[0].status == "skipped" and started == [] and cache.reads == []


class Held(Watched):
    """Reads wait until released; ``entered`` is set when one has begun."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def get_many(self, keys: list[str]) -> dict[str, CacheEntry | None]:
        self.entered.set()
        assert self.release.wait(20), "the read was never released"
        return super().get_many(keys)


def test_a_read_ahead_reads_on_the_cache_pool_before_enrich_is_called() -> None:
    cache = Held()
    engine = make_engine(cache=cache, sources={"linkedin": LinkedInSource()})
    inp = EnrichmentInput(sources=("linkedin",), linkedin_export=SKILLS)
    cache.release.set()
    engine.enrich(inp)  # fills the cache
    cache.release.clear()
    cache.entered.clear()
    ahead = engine.read_ahead(inp)
    assert cache.entered.wait(20), "the read ahead did not start before enrich"
    cache.release.set()
    result = engine.enrich(inp, ahead)
    assert result.sources[0].cached is True
    reads = cache.reads[1:]
    assert len(reads) == 1 and reads[0][0].startswith("enrichment-cache")


def test_a_read_ahead_for_more_sources_serves_fewer_and_a_changed_input_reads_again() -> None:
    cache = Watched()
    engine = make_engine(cache=cache, sources={"linkedin": LinkedInSource()})
    both = EnrichmentInput(sources=("github", "linkedin"), linkedin_export=SKILLS)
    engine.enrich(both)
    n = len(cache.reads)
    fewer = EnrichmentInput(sources=("linkedin",), linkedin_export=SKILLS)
    assert engine.enrich(fewer, engine.read_ahead(both)).sources[0].cached is True
    assert len(cache.reads) == n + 1  # the read ahead only
    other = EnrichmentInput(sources=("linkedin",), linkedin_export={"Skills.csv": "Name\nGo\n"})
    result = engine.enrich(other, engine.read_ahead(both))
    assert result.sources[0].cached is False and result.data["skills"][0]["name"] == "Go"
    assert len(cache.reads) == n + 3  # the unused read ahead, and the engine's own read


def test_a_read_ahead_that_hangs_is_given_up_and_the_sources_are_fetched() -> None:
    cache = Held()
    engine = make_engine(cache=cache, sources={"linkedin": LinkedInSource()})
    inp = EnrichmentInput(sources=("linkedin",), linkedin_export=SKILLS, timeout_ms=8000)
    try:
        started = time.monotonic()
        result = engine.enrich(inp, engine.read_ahead(inp))
        waited = time.monotonic() - started
    finally:
        cache.release.set()
    assert result.sources[0].status == "success" and result.sources[0].cached is False
    assert CACHE_READ_GRACE_S <= waited < 8  # the grace, not the whole deadline


def test_force_refresh_reads_nothing_ahead() -> None:
    cache = Watched()
    engine = make_engine(cache=cache, sources={"linkedin": LinkedInSource()})
    inp = EnrichmentInput(sources=("linkedin",), linkedin_export=SKILLS, force_refresh=True)
    ahead = engine.read_ahead(inp)
    assert ahead.entries is None
    assert engine.enrich(inp, ahead).sources[0].cached is False and cache.reads == []

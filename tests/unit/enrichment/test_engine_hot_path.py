"""Issue 11: an enrichment answered from the cache reads it on the caller's thread, in one
round trip, and starts no event loop; a loop is started only when a source must be fetched."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from enrichment.cache import CacheEntry, MemoryCacheStore
from enrichment.engine import EnrichmentInput
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


def test_enrich_async_reads_the_cache_off_the_loop() -> None:
    cache = Watched()
    engine = make_engine(cache=cache, sources={"linkedin": LinkedInSource()})
    inp = EnrichmentInput(sources=("linkedin",), linkedin_export=SKILLS)
    engine.enrich(inp)
    assert asyncio.run(engine.enrich_async(inp)).sources[0].cached is True
    thread, in_loop, _ = cache.reads[-1]
    assert thread.startswith("enrichment-cache") and not in_loop

"""Issue 11: an enrichment answered from the cache reads it in one round trip, on the caller's
thread, or sent ahead and collected later (in flight during the caller's increment, with no
thread of its own), and starts no event loop; a loop is started only when a source must be
fetched."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from enrichment.cache import CacheEntry, MemoryCacheStore
from enrichment.engine import CACHE_READ_GRACE_S, EnrichmentInput
from enrichment.sources.linkedin import LinkedInSource
from stores.errors import StoreUnanswered
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
    """The coroutines run on an event loop from now on (``asyncio.run`` runs them with a
    ``Runner`` too)."""
    started: list[Any] = []
    real = asyncio.Runner.run

    def run(self: asyncio.Runner, main: Any, **kw: Any) -> Any:
        started.append(main)
        return real(self, main, **kw)

    monkeypatch.setattr(asyncio.Runner, "run", run)
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


class Started(Watched):
    """Notes when a read is sent (``start_get_many``) and when it is collected, and on which
    thread; ``fail`` makes the collection raise, as a store that failed would."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, str]] = []
        self.fail = False

    def start_get_many(
        self, keys: list[str], deadline_s: float
    ) -> Callable[[], dict[str, CacheEntry | None]]:
        self.events.append(("sent", threading.current_thread().name))

        def collect() -> dict[str, CacheEntry | None]:
            self.events.append(("collected", threading.current_thread().name))
            if self.fail:
                raise StoreUnanswered("read failed: DeadlineExceeded")
            return self.get_many(keys)

        return collect


def test_a_read_ahead_is_sent_at_once_and_collected_by_enrich_on_the_callers_thread() -> None:
    cache = Started()
    engine = make_engine(cache=cache, sources={"linkedin": LinkedInSource()})
    inp = EnrichmentInput(sources=("linkedin",), linkedin_export=SKILLS)
    engine.enrich(inp)  # fills the cache (a plain read, not sent ahead)
    here = threading.current_thread().name
    ahead = engine.read_ahead(inp)
    assert cache.events == [("sent", here)]
    result = engine.enrich(inp, ahead)
    assert result.sources[0].cached is True
    assert cache.events == [("sent", here), ("collected", here)]
    assert len(cache.reads) == 2  # the plain read, and the one collected: no other


def test_a_read_ahead_for_more_sources_serves_fewer_and_a_changed_input_reads_again() -> None:
    cache = Started()
    engine = make_engine(cache=cache, sources={"linkedin": LinkedInSource()})
    both = EnrichmentInput(sources=("github", "linkedin"), linkedin_export=SKILLS)
    engine.enrich(both)
    n = len(cache.reads)
    fewer = EnrichmentInput(sources=("linkedin",), linkedin_export=SKILLS)
    assert engine.enrich(fewer, engine.read_ahead(both)).sources[0].cached is True
    assert len(cache.reads) == n + 1 and [e for e, _ in cache.events] == ["sent", "collected"]
    other = EnrichmentInput(sources=("linkedin",), linkedin_export={"Skills.csv": "Name\nGo\n"})
    result = engine.enrich(other, engine.read_ahead(both))
    assert result.sources[0].cached is False and result.data["skills"][0]["name"] == "Go"
    # the read ahead was sent but never collected; the engine read for its own input
    assert [e for e, _ in cache.events] == ["sent", "collected", "sent"]
    assert len(cache.reads) == n + 2


def test_a_read_ahead_that_fails_is_a_miss_and_the_sources_are_fetched(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = Started()
    engine = make_engine(cache=cache, sources={"linkedin": LinkedInSource()})
    inp = EnrichmentInput(sources=("linkedin",), linkedin_export=SKILLS)
    engine.enrich(inp)
    cache.fail = True
    result = engine.enrich(inp, engine.read_ahead(inp))
    assert result.status == "success"
    assert result.sources[0].status == "success" and result.sources[0].cached is False
    assert "cache read failed" in caplog.text


def test_the_read_ahead_is_bounded_by_the_grace_and_the_deadline() -> None:
    grace: list[float] = []

    class Noting(MemoryCacheStore):
        def start_get_many(
            self, keys: list[str], deadline_s: float
        ) -> Callable[[], dict[str, CacheEntry | None]]:
            grace.append(deadline_s)
            return super().start_get_many(keys, deadline_s)

    engine = make_engine(cache=Noting(), sources={"linkedin": LinkedInSource()})
    engine.read_ahead(EnrichmentInput(sources=("linkedin",), linkedin_export=SKILLS))
    engine.read_ahead(
        EnrichmentInput(sources=("linkedin",), linkedin_export=SKILLS, timeout_ms=500)
    )
    assert grace[0] == CACHE_READ_GRACE_S and 0.4 < grace[1] <= 0.5


def test_force_refresh_reads_nothing_ahead() -> None:
    cache = Watched()
    engine = make_engine(cache=cache, sources={"linkedin": LinkedInSource()})
    inp = EnrichmentInput(sources=("linkedin",), linkedin_export=SKILLS, force_refresh=True)
    ahead = engine.read_ahead(inp)
    assert ahead.entries is None
    assert engine.enrich(inp, ahead).sources[0].cached is False and cache.reads == []

"""Issue 11: an admitted call's cache read is sent before its rate-limit increment and collected
after it (the two round trips are in flight together: one wait, not two); a refused call's read
ahead is dropped, never served."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from common.errors import ResourceExhausted
from common.settings import load_settings
from enrichment.cache import StoreCacheStore
from enrichment.engine import Engine
from enrichment.sources.linkedin import LinkedInSource
from stores.memory import MemoryStore
from tests.support.clock import FakeClock
from tests.support.doubles import StaticEngine, seed_user, set_config
from usecases import enrich
from usecases.app import App
from usecases.context import Caller

SKILLS = {"Skills.csv": "Name\nJS\nTypeScript\n"}
REQUEST = {"cvId": "cv-pat", "sources": ["linkedin"], "linkedin": {"export": SKILLS}}


class Ordered(MemoryStore):
    """Notes, in order, when the cache read is sent, when the rate limit's increment is made,
    and when the cache read is collected."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    def start_get_many(
        self, paths: Sequence[str], deadline_s: float | None = None
    ) -> Callable[[], dict[str, dict[str, Any] | None]]:
        cache = any(p.startswith("external_data_cache/") for p in paths)
        if cache:
            self.events.append("cache read sent")
        pending = super().start_get_many(paths, deadline_s)

        def collect() -> dict[str, dict[str, Any] | None]:
            if cache:
                self.events.append("cache read collected")
            return pending()

        return collect

    def increment(self, path: str, field_name: str, by: int, extra: Mapping[str, Any]) -> int:
        if path.startswith("rate_limits/"):
            self.events.append(f"increment {by:+d}")
        return super().increment(path, field_name, by, extra)


def test_the_cache_read_is_in_flight_during_the_increment(clock: FakeClock) -> None:
    store = Ordered()
    seed_user(store, "pat", premium=True)
    set_config(store)
    engine = Engine(
        load_settings({}).enrichment,
        StoreCacheStore(store),
        now=clock,
        sources={"linkedin": LinkedInSource()},
    )
    app = App(load_settings({}), store, engine, now=clock, rng=lambda n: 0)
    first = enrich.run(app, Caller("pat"), REQUEST)  # fills the cache, warms the instance
    assert first["sources"][0]["cached"] is False
    store.events.clear()
    second = enrich.run(app, Caller("pat"), REQUEST)
    assert second["sources"][0]["cached"] is True
    assert second["enrichedData"] == first["enrichedData"]
    assert store.events == ["cache read sent", "increment +1", "cache read collected"]


def test_a_refused_call_reads_ahead_but_never_runs_the_engine(
    store: MemoryStore, engine: StaticEngine, clock: FakeClock
) -> None:
    seed_user(store, "pat")
    set_config(store)
    app = App(
        load_settings({"EXTERNAL_DATA_RATE_LIMIT_FREE_HOURLY": "1"}),
        store,
        engine,
        now=clock,
        rng=lambda n: 0,
    )
    preview = {**REQUEST, "mode": "preview"}
    enrich.run(app, Caller("pat"), preview)
    with pytest.raises(ResourceExhausted):
        enrich.run(app, Caller("pat"), preview)
    assert [i.sources for i in engine.read_aheads] == [("linkedin",), ("linkedin",)]
    assert len(engine.calls) == 1

"""Issue 11: an admitted call's cache read and its rate-limit increment are in flight together
(one round trip's wait, not two); a refused call's read ahead is dropped, never served."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
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


class Meeting(MemoryStore):
    """While ``meet`` is set, the rate limit's increment and the cache read each wait at a
    barrier for the other: done one after the other, the first waits the barrier out."""

    def __init__(self) -> None:
        super().__init__()
        self.meet: threading.Barrier | None = None
        self.met: list[str] = []

    def _wait(self, what: str) -> None:
        if self.meet is not None:
            self.meet.wait()
            self.met.append(what)

    def increment(self, path: str, field_name: str, by: int, extra: Mapping[str, Any]) -> int:
        if path.startswith("rate_limits/") and by > 0:
            self._wait("increment")
        return super().increment(path, field_name, by, extra)

    def get_many(self, paths: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        if any(p.startswith("external_data_cache/") for p in paths):
            self._wait("cache read")
        return super().get_many(paths)


def test_the_cache_read_and_the_increment_are_in_flight_together(clock: FakeClock) -> None:
    store = Meeting()
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
    store.meet = threading.Barrier(2, timeout=10)
    second = enrich.run(app, Caller("pat"), REQUEST)
    assert (
        second["sources"][0]["cached"] is True and second["enrichedData"] == first["enrichedData"]
    )
    assert sorted(store.met) == ["cache read", "increment"]
    assert not store.meet.broken


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

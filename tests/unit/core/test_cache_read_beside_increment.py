"""Issue 11: an admitted call's cache read and its rate-limit increment are in flight together
(one wait, not two), and a call the cache answers whole is enriched, and its data shaped for
the answer, while the increment is in flight; a refused call's read ahead, and anything the
cache gave it, is dropped, never served."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from common.errors import ResourceExhausted
from common.settings import load_settings
from enrichment.cache import StoreCacheStore
from enrichment.engine import Engine
from enrichment.sources.linkedin import LinkedInSource
from stores.base import Fields
from stores.memory import MemoryStore
from tests.support.clock import FakeClock
from tests.support.doubles import StaticEngine, seed_user, set_config
from usecases import enrich, shaping
from usecases.app import App
from usecases.context import Caller

SKILLS = {"Skills.csv": "Name\nJS\nTypeScript\n"}
REQUEST = {"cvId": "cv-pat", "sources": ["linkedin"], "linkedin": {"export": SKILLS}}


class Ordered(MemoryStore):
    """Notes, in order, when the cache read and the rate limit's increment are sent and when
    each is collected."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    def start_get_many(
        self, paths: Sequence[str], deadline_s: float | None = None, fields: Fields | None = None
    ) -> Callable[[], dict[str, dict[str, Any] | None]]:
        cache = any(p.startswith("external_data_cache/") for p in paths)
        if cache:
            self.events.append("cache read sent")
        pending = super().start_get_many(paths, deadline_s, fields)

        def collect() -> dict[str, dict[str, Any] | None]:
            if cache:
                self.events.append("cache read collected")
            return pending()

        return collect

    def increment(self, path: str, field_name: str, by: int, extra: Mapping[str, Any]) -> int:
        if path.startswith("rate_limits/"):
            self.events.append(f"increment {by:+d}")
        return super().increment(path, field_name, by, extra)

    def start_increment(
        self, path: str, field_name: str, by: int, extra: Mapping[str, Any]
    ) -> Callable[[], int]:
        self.events.append(f"increment {by:+d} sent")

        def collect() -> int:
            self.events.append(f"increment {by:+d} collected")
            return MemoryStore.increment(self, path, field_name, by, extra)

        return collect


class CountedEngine(Engine):
    """The real engine, counting the calls that had to run ``enrich``."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.runs = 0

    def enrich(self, *a: Any, **kw: Any) -> Any:
        self.runs += 1
        return super().enrich(*a, **kw)


def _real(store: MemoryStore, clock: FakeClock, env: Mapping[str, str] | None = None) -> App:
    engine = CountedEngine(
        load_settings({}).enrichment,
        StoreCacheStore(store),
        now=clock,
        sources={"linkedin": LinkedInSource()},
    )
    return App(load_settings(dict(env or {})), store, engine, now=clock, rng=lambda n: 0)


def _premium_pat(clock: FakeClock) -> tuple[App, MemoryStore]:
    """A premium user ``pat`` with the gated config, and an app on the real engine."""
    store = MemoryStore()
    seed_user(store, "pat", premium=True)
    set_config(store)
    return _real(store, clock), store


def test_the_cache_read_is_in_flight_during_the_increment(clock: FakeClock) -> None:
    store = Ordered()
    seed_user(store, "pat", premium=True)
    set_config(store)
    app = _real(store, clock)
    both_in_flight = ["cache read sent", "increment +1 sent", "cache read collected"]
    first = enrich.run(app, Caller("pat"), REQUEST)  # fills the cache, warms the instance
    assert first["sources"][0]["cached"] is False
    # A miss: the engine, which must not fetch before the call is admitted, runs afterwards.
    assert store.events == [*both_in_flight, "increment +1 collected", "cache read collected"]
    enrich.run(app, Caller("pat"), REQUEST)  # the entry checked usable on this instance
    store.events.clear()
    third = enrich.run(app, Caller("pat"), REQUEST)
    assert third["sources"][0]["cached"] is True
    assert third["enrichedData"] == first["enrichedData"]
    assert store.events == [*both_in_flight, "increment +1 collected"]


def test_a_call_the_cache_answers_whole_is_enriched_before_its_admission_is_known(
    clock: FakeClock,
) -> None:
    app, _store = _premium_pat(clock)
    engine = app.engine
    assert isinstance(engine, CountedEngine)
    first = enrich.run(app, Caller("pat"), REQUEST)  # a miss: fetched, then cached
    second = enrich.run(app, Caller("pat"), REQUEST)  # a hit this instance checks is usable
    assert engine.runs == 2
    third = enrich.run(app, Caller("pat"), REQUEST)
    assert engine.runs == 2  # answered from what the cache gave while the increment was out
    assert third["status"] == second["status"] == first["status"] == "success"
    assert third["sources"] == second["sources"]
    assert third["enrichedData"] == second["enrichedData"] == first["enrichedData"]
    assert third["usage"]["remaining"] == second["usage"]["remaining"] - 1
    forced = enrich.run(app, Caller("pat"), {**REQUEST, "options": {"forceRefresh": True}})
    assert engine.runs == 3 and forced["sources"][0]["cached"] is False


def test_a_refused_call_the_cache_could_answer_is_refused_and_records_no_enrichment(
    clock: FakeClock,
) -> None:
    store = MemoryStore()
    seed_user(store, "pat")
    set_config(store)
    app = _real(store, clock, {"EXTERNAL_DATA_RATE_LIMIT_FREE_HOURLY": "2"})
    engine = app.engine
    assert isinstance(engine, CountedEngine)
    preview = {**REQUEST, "mode": "preview"}
    enrich.run(app, Caller("pat"), preview)  # a miss
    enrich.run(app, Caller("pat"), preview)  # a hit, checked usable: the next is answered early
    result_docs = {p: d for p, d in store.docs.items() if "/externalData/" in p}
    with pytest.raises(ResourceExhausted):
        enrich.run(app, Caller("pat"), preview)
    assert engine.runs == 2
    assert {p: d for p, d in store.docs.items() if "/externalData/" in p} == result_docs
    outcomes = [
        d["outcome"]
        for p, d in store.docs.items()
        if p.startswith("external_data_usage/pat/events/")
    ]
    assert sorted(outcomes) == ["rate_limited", "success", "success"]


def test_a_source_switched_off_is_not_served_from_what_the_cache_gave_early(
    clock: FakeClock,
) -> None:
    app, store = _premium_pat(clock)
    enrich.run(app, Caller("pat"), REQUEST)  # fills the cache
    set_config(store, sources={"linkedin": {"enabled": False}}, version=2)
    clock.advance(seconds=app.settings.config_ttl_seconds + 1)
    off = enrich.run(app, Caller("pat"), REQUEST)
    assert off["sources"][0]["status"] == "skipped"
    assert off["sources"][0]["error"]["code"] == "disabled"
    assert "linkedin" not in (off.get("enrichedData") or {})


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


class Shapings:
    """``shaping.shape`` noted in the store's events; every ``shaping.bounded`` counted."""

    def __init__(self, store: Ordered, monkeypatch: pytest.MonkeyPatch, *, fail: bool = False):
        self.bounded = 0
        shape, bounded = shaping.shape, shaping.bounded

        def noted_shape(*a: Any) -> Any:
            store.events.append("shaped")
            if fail:
                raise RuntimeError("shaping failed")
            return shape(*a)

        def counted(*a: Any) -> Any:
            self.bounded += 1
            return bounded(*a)

        monkeypatch.setattr(shaping, "shape", noted_shape)
        monkeypatch.setattr(shaping, "bounded", counted)


@pytest.mark.parametrize("premium", [True, False])
def test_a_cache_hit_is_shaped_for_its_answer_while_the_increment_is_in_flight(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch, premium: bool
) -> None:
    store = Ordered()
    seed_user(store, "pat", premium=premium)
    set_config(store)
    app = _real(store, clock)
    request = REQUEST if premium else {**REQUEST, "mode": "preview"}
    first = enrich.run(app, Caller("pat"), request)  # a miss, shaped after admission
    enrich.run(app, Caller("pat"), request)  # a hit this instance checks is usable
    shapings = Shapings(store, monkeypatch)
    store.events.clear()
    third = enrich.run(app, Caller("pat"), request)
    assert third["access"] == ("full" if premium else "preview")
    assert store.events == [
        "cache read sent",
        "increment +1 sent",
        "cache read collected",
        "shaped",
        "increment +1 collected",
    ]
    assert shapings.bounded == 1  # the early shaping is the answer's: not shaped again
    assert third["enrichedData"] == first["enrichedData"]
    stored = store.docs["cvs/cv-pat/externalData/latest"]["enrichedDataJson"]
    assert stored == third["enrichedData"].text


def test_a_shaping_that_fails_early_is_done_again_for_the_answer(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Ordered()
    seed_user(store, "pat", premium=True)
    set_config(store)
    app = _real(store, clock)
    first = enrich.run(app, Caller("pat"), REQUEST)
    enrich.run(app, Caller("pat"), REQUEST)
    shapings = Shapings(store, monkeypatch, fail=True)
    third = enrich.run(app, Caller("pat"), REQUEST)
    assert "shaped" in store.events and shapings.bounded == 1  # after admission, by the answer
    assert third["status"] == "success" and third["enrichedData"] == first["enrichedData"]

"""Fair quota (contract 2.1): an admitted enrichment that fails through no fault of the user
gives its unit back. Three gaps an audit found: a store failure after admission (a half-open
breaker's probe ticket) kept the unit; a call whose every requested source was switched off,
or paused by its breaker in an upstream outage, was charged (an outage spent free users' whole
hour); and a returned unit left ``resetAt`` at the time of the next free unit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from common.errors import Unavailable
from common.settings import load_settings
from stores.errors import StoreError
from stores.memory import MemoryStore
from tests.support.clock import FakeClock
from tests.support.doubles import StaticEngine, seed_user, set_config
from usecases import enrich
from usecases.app import App
from usecases.context import Caller

PREVIEW = {"cvId": "cv-fay", "mode": "preview", "sources": ["github"], "github": "octocat"}


class ProbeBlip(MemoryStore):
    """Increments of breaker probe documents fail (the store stops answering mid-call)."""

    def increment(self, path: str, *args: Any, **kwargs: Any) -> Any:
        if "breaker_probes" in path:
            raise StoreError("no answer")
        return super().increment(path, *args, **kwargs)


def _app(store: MemoryStore, clock: FakeClock) -> App:
    seed_user(store, "fay")
    return App(load_settings({}), store, StaticEngine(), now=clock, rng=lambda n: 0)


def _units_taken(store: MemoryStore) -> int:
    return sum(int(d.get("count", 0)) for p, d in store.docs.items() if "_enrich_" in p)


def test_a_store_failure_after_admission_gives_the_unit_back() -> None:
    store, clock = ProbeBlip(), FakeClock()
    app = _app(store, clock)
    until = clock() - timedelta(minutes=1)  # open until a minute ago: half-open, probing
    opened = {"state": "open", "since": until - timedelta(minutes=5), "until": until}
    set_config(store, breakers={"github": opened})
    with pytest.raises(Unavailable):
        enrich.run(app, Caller("fay"), PREVIEW)
    assert _units_taken(store) == 0


@pytest.mark.parametrize("why", ["switched off", "breaker open"])
def test_no_requested_source_able_to_run_costs_no_quota(why: str) -> None:
    store, clock = MemoryStore(), FakeClock()
    app = _app(store, clock)
    if why == "switched off":
        set_config(store, sources={"github": {"enabled": False}})
    else:
        now = clock()
        opened = {"state": "open", "since": now, "until": now + timedelta(minutes=5)}
        set_config(store, breakers={"github": opened})
    for _ in range(5):  # more than the free tier's 3
        out = enrich.run(app, Caller("fay"), PREVIEW)
        assert out["status"] == "failed" and out["usage"]["remaining"] == 3
    assert _units_taken(store) == 0


def test_a_returned_unit_resets_at_the_end_of_the_window() -> None:
    store, clock = MemoryStore(), FakeClock()
    app = _app(store, clock)
    set_config(store, sources={"github": {"enabled": False}})
    out = enrich.run(app, Caller("fay"), PREVIEW)
    # A unit is left, so resetAt is the end of the current window (docs/api.md), not the
    # moment a unit would free up.
    assert out["usage"]["remaining"] == 3 and out["usage"]["resetAt"] == "2026-11-26T11:00:00Z"

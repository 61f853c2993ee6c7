"""A crash in our own source code is a failure of the service, not a third party's outage
(contract 2.4 and 6): it counts in ``errors`` (the kill switch's signal), never in
``upstreamFailures`` (which ``errorRate`` leaves out and the source's breaker reads), so one
user's file that trips a bug can neither hide it nor switch the source off for everyone."""

from __future__ import annotations

from typing import NoReturn

import pytest

from common.errors import Internal
from common.settings import load_settings
from enrichment.cache import CacheEntry
from enrichment.engine import EnrichmentInput
from enrichment.sources.base import SourceContext
from enrichment.sources.linkedin import LinkedInSource
from stores.memory import MemoryStore
from tests.support.aggregates import counter
from tests.support.clock import FakeClock
from tests.support.doubles import seed_user, set_config
from tests.unit.enrichment.helpers import make_engine
from usecases import enrich
from usecases.app import App
from usecases.context import Caller

EXPORT = {"Skills.csv": "Name\nPython\nGo\n"}


class Crashing(LinkedInSource):
    async def fetch(
        self, key: str, inp: EnrichmentInput, ctx: SourceContext, stale: CacheEntry | None
    ) -> NoReturn:
        raise KeyError("bug")


def _app(sources: dict[str, LinkedInSource]) -> tuple[App, MemoryStore]:
    store = MemoryStore()
    seed_user(store, "pat", premium=True)
    set_config(store)
    engine = make_engine(sources=sources)
    return App(load_settings({}), store, engine, now=FakeClock(), rng=lambda n: 0), store


def test_a_call_whose_only_source_crashed_is_internal_an_error_and_free() -> None:
    app, store = _app({"linkedin": Crashing()})
    request = {"cvId": "cv-pat", "sources": ["linkedin"], "linkedin": {"export": EXPORT}}
    for _ in range(3):
        with pytest.raises(Internal):
            enrich.run(app, Caller("pat"), request)
    assert counter(store, "c.errors") == 3
    assert counter(store, "c.upstreamFailures") == 0
    assert counter(store, "src.linkedin.upstreamFailures") == 0
    assert store.docs[next(p for p in store.docs if p.startswith("rate_limits/"))]["count"] == 0


def test_a_crashed_source_beside_one_that_answered_is_no_upstream_failure() -> None:
    app, store = _app({"linkedin": LinkedInSource(), "github": Crashing()})
    request = {
        "cvId": "cv-pat",
        "sources": ["linkedin", "github"],
        "github": "octocat",
        "linkedin": {"export": EXPORT},
    }
    out = enrich.run(app, Caller("pat"), request)
    github = next(s for s in out["sources"] if s["source"] == "github")
    assert out["status"] == "partial"
    assert github["error"] == {"code": "upstream", "message": "internal error"}
    assert counter(store, "src.github.failed") == 1
    assert counter(store, "src.github.upstreamFailures") == 0
    assert counter(store, "c.upstreamFailures") == 0

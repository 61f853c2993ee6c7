"""The gradual rollback compares the gated cohort's p95 (contract 6), a signal no third-party
outage may move: a call that waited on a source failing upstream or timing out is counted in
the cohorts but not timed there (the function's own histogram, analytics' latency, times it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from common.settings import load_settings
from common.vocab import ResultStatus, SourceStatus
from enrichment.model import EnrichmentResult, SourceError, SourceReport
from gating.rollout import parse
from rollout_control import baseline
from stores.memory import MemoryStore
from tests.support.aggregates import summed
from tests.support.clock import FakeClock
from tests.support.doubles import StaticEngine, seed_user, set_config
from tests.unit.rollout.conftest import Aggregates
from usecases import enrich
from usecases.app import App
from usecases.context import Caller


class WebTimesOut(StaticEngine):
    def enrich(self, inp: Any, ahead: Any = None) -> EnrichmentResult:
        web = SourceReport(
            "web", SourceStatus.TIMEOUT, 0, 10_000, False, SourceError("timeout", "t")
        )
        github = SourceReport("github", SourceStatus.SUCCESS, 3, 200, False)
        return EnrichmentResult(
            {"skills": [], "projects": []}, (github, web), ResultStatus.PARTIAL, False, 10
        )


def test_a_call_that_waited_on_a_timing_out_source_is_not_timed_in_the_cohorts() -> None:
    store = MemoryStore()
    seed_user(store, "pat", premium=True)
    set_config(store)
    app = App(load_settings({}), store, WebTimesOut(), now=FakeClock(), rng=lambda n: 0)
    enrich.run(app, Caller("pat"), {"cvId": "cv-pat", "github": "octocat", "name": "Pat"})
    enrich.run(app, Caller("pat"), {"cvId": "cv-pat", "sources": ["github"], "github": "x"})
    got = summed(store)
    assert got["cohort"]["in"]["requests"] == 2
    assert sum(got["cohort"]["in"]["lat"].values()) == 1  # the call without a failing source
    assert sum(got["fn"]["enrichCVWithExternalData"]["lat"].values()) == 2


def test_the_phase_baseline_is_the_cohorts_histogram_where_there_is_one() -> None:
    store = MemoryStore()
    agg = Aggregates(store)
    since = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    for h in range(1, 25):  # the day before: 60 calls an hour, the function's histogram slow
        at = since - timedelta(hours=h) + timedelta(minutes=1)
        agg.traffic(at, requests=60, lat_ms=9000, cohort_out={"requests": 60, "lat_ms": 300})
    cfg = parse({"phase": "full", "rolloutPercentage": 100, "phaseSince": since})
    got = baseline.capture(store, cfg, None, since)
    assert got["p95Ms"] is not None and got["p95Ms"] < 400

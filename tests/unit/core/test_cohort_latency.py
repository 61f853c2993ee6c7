"""The gradual rollback compares the gated cohort's p95 (contract 6), a signal no third-party
outage may move: a call that waited on a source failing upstream or timing out is counted in
the cohorts but not timed there (the function's own histogram, analytics' latency, times it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from common.settings import load_settings
from common.vocab import ResultStatus, SourceStatus
from enrichment.model import EnrichmentResult, SourceError, SourceReport
from gating.rollout import parse
from rollout_control import baseline
from stores.memory import MemoryStore
from tests.support.aggregates import summed
from tests.support.clock import FakeClock
from tests.support.doubles import StaticEngine, seed_user, set_config
from tests.unit.rollout.conftest import Aggregates, enter_phase
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


def test_one_users_refusals_count_once_in_the_cohorts_conversion() -> None:
    # Contract 6: no single user can move the rollback's signals. A free user refused 100
    # times (refusals come before the rate limit, so they cost nothing) made 100 exposures and
    # dragged the cohort's conversion under half of its baseline: a gradual rollback.
    from common.errors import PermissionDenied
    from gating.rollout import bucket
    from rollout_control.evaluator import evaluate

    now = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)
    store = MemoryStore()
    enter_phase(store, "premium", now - timedelta(hours=2))
    agg = Aggregates(store)
    for k in range(1, 31):  # the cohort's own traffic: 60 previews, 6 conversions (10%)
        at = now.replace(second=0) - timedelta(minutes=k) + timedelta(seconds=5)
        side = {"requests": 2, "previews": 2, "conversions": int(k % 5 == 0), "lat_ms": 300}
        agg.traffic(at, requests=2, cohort_in=side)
    uid = next(f"u{i}" for i in range(1000) if bucket(f"u{i}") < 25)
    seed_user(store, uid)
    clock = FakeClock(now - timedelta(minutes=10))
    app = App(load_settings({}), store, StaticEngine(), now=clock, rng=lambda n: 0)
    for _ in range(100):
        with pytest.raises(PermissionDenied):
            enrich.run(app, Caller(uid), {"cvId": f"cv-{uid}", "mode": "full"})
    got = summed(store)
    assert got["c"]["gateShown"] == 100 and got["cohort"]["in"]["gateShown"] == 1
    res = evaluate(store, now)
    assert (
        res.action != "gradual" and store.docs["config/externalDataRollout"]["phase"] == "premium"
    )

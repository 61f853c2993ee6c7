"""Contract 6: "The scheduled evaluator acts on signals that no single user ... can move". A
source's breaker needs failed tries from at least 5 distinct users: one premium user calling
their own website that answers 503 (``upstream``), with fair quota giving the units back, must
not switch the website source off for everyone. Who failed a source is counted per minute in
the call's one raw shard write (``srcFailedUsers.{source}.{keyed hash}``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from common.settings import Settings, load_settings
from common.vocab import Fn, Outcome, ResultStatus, SourceStatus
from enrichment.model import EnrichmentResult, SourceError, SourceReport
from gating.rollout import BreakerState, parse
from recording.recorder import CallRecord, Recorder, SourceOutcome, Switches
from rollout_control.evaluator import evaluate
from stores.memory import MemoryStore
from stores.schema import CONFIG_PATH, RAW
from tests.support.clock import FakeClock
from tests.support.doubles import StaticEngine, seed_user
from tests.unit.rollout.conftest import enter_phase
from usecases import enrich
from usecases.app import App
from usecases.context import Caller

NOW = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)


class _Sites(StaticEngine):
    """The website source: a site whose host names ``failing`` answers 503 (``upstream``)."""

    def __init__(self, failing: set[str]) -> None:
        super().__init__()
        self.failing = failing

    def enrich(self, inp: Any, ahead: Any = None) -> EnrichmentResult:
        bad = any(name in (inp.website or "") for name in self.failing)
        report = (
            SourceReport(
                "website",
                SourceStatus.FAILED,
                0,
                80,
                False,
                SourceError("upstream", "the website answered 503"),
            )
            if bad
            else SourceReport("website", SourceStatus.SUCCESS, 4, 300, False)
        )
        status = ResultStatus.FAILED if bad else ResultStatus.SUCCESS
        return EnrichmentResult({"skills": [], "projects": []}, (report,), status, bad, 100)


def _website(app: App, uid: str) -> None:
    data = {"cvId": f"cv-{uid}", "website": f"https://{uid}.example/", "sources": ["website"]}
    enrich.run(app, Caller(uid), data)


@pytest.mark.parametrize(("failing", "opens"), [(1, False), (5, True)])
def test_the_website_breaker_opens_only_on_failures_of_five_distinct_users(
    failing: int, opens: bool
) -> None:
    """20 failed website tries of 35 in 5 minutes: from one user, the breaker stays closed;
    from five, it opens."""
    store = MemoryStore()
    enter_phase(store, "premium", NOW - timedelta(hours=2))
    honest = [f"u{i}" for i in range(15)]
    bad = [f"bad{i}" for i in range(failing)]
    for uid in honest + bad:
        seed_user(store, uid, premium=True)
    clock = FakeClock(NOW.replace(second=0) - timedelta(minutes=5) + timedelta(seconds=1))
    app = App(load_settings({}), store, _Sites(set(bad)), now=clock, rng=lambda n: 0)
    for m in range(5):
        for uid in honest[m * 3 : (m + 1) * 3]:
            _website(app, uid)
        for i in range(4):
            _website(app, bad[(m * 4 + i) % failing])
        clock.advance(minutes=1)
    moved = evaluate(store, NOW, log=lambda *a, **k: None).breakers
    state = parse(store.docs[CONFIG_PATH]).breaker("website", NOW)
    assert state is (BreakerState.OPEN if opens else BreakerState.CLOSED)
    assert len(moved) == int(opens)


def _writes(sources: tuple[SourceOutcome, ...], outcome: Outcome = Outcome.FAILED) -> Any:
    recorder = Recorder(Settings(project_id="t", hash_salt="s" * 16), rng=lambda n: 0)
    rec = CallRecord(Fn.ENRICH, NOW, outcome, 100.0, uid="alice", sources=sources)
    return recorder.writes(rec, Switches())


def test_who_failed_a_source_is_in_the_calls_one_raw_shard_write() -> None:
    failed = SourceOutcome("website", SourceStatus.FAILED, 80.0, False, "upstream")
    timeout = SourceOutcome("github", SourceStatus.TIMEOUT, 80.0, False, "timeout")
    cached = SourceOutcome("search", SourceStatus.FAILED, 0.0, True, "upstream")
    skipped = SourceOutcome("linkedin", SourceStatus.SKIPPED, 0.0, False, "upstream")
    writes = _writes((failed, timeout, cached, skipped))
    shards = [w for w in writes if w.data.get("granularity") == RAW]
    assert len(shards) == 1  # no extra write, no extra round trip
    by_source = shards[0].data["srcFailedUsers"]
    assert set(by_source) == {"website", "github"}  # cache hits and skipped sources: no tries
    assert by_source["website"].keys() == by_source["github"].keys()
    assert "alice" not in next(iter(by_source["website"]))  # a keyed hash, not the uid
    assert "failedUsers" not in shards[0].data  # not a failure of the service


def test_a_source_that_answered_or_failed_on_our_side_names_nobody() -> None:
    ok = SourceOutcome("website", SourceStatus.SUCCESS, 80.0, False)
    crashed = SourceOutcome("github", SourceStatus.FAILED, 80.0, False, "internal")
    (shard,) = [w for w in _writes((ok, crashed)) if w.data.get("granularity") == RAW]
    assert "srcFailedUsers" not in shard.data

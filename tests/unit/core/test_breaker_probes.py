"""Contract section 6, the half-open breaker at the gate: a few probe calls reach the source
(past the cache), each records its outcome on the half-open period's probe document, and the
calls after them find the source paused."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from common.settings import load_settings
from common.vocab import ResultStatus, SourceStatus
from enrichment.model import EnrichmentResult, SourceError, SourceReport
from rollout_control.breakers import PROBES_PER_HALF_OPEN
from stores.errors import StoreError
from stores.memory import MemoryStore
from stores.schema import breaker_probe_path
from tests.support.clock import FakeClock
from tests.support.doubles import StaticEngine, seed_user, set_config
from usecases import enrich
from usecases.app import App
from usecases.context import Caller

REQUEST = {"cvId": "cv-pat", "sources": ["github", "linkedin"], "github": "octocat"}


class GitHubAnswers(StaticEngine):
    """GitHub's report is ``ok`` (success) or an error code; LinkedIn always succeeds."""

    def __init__(self) -> None:
        super().__init__()
        self.github: str = "ok"

    def enrich(self, inp: Any, ahead: Any = None) -> EnrichmentResult:
        self.calls.append(inp)
        reports = []
        for name in inp.sources:
            code = self.github if name == "github" else "ok"
            if code == "ok":
                reports.append(SourceReport(name, SourceStatus.SUCCESS, 1, 5, False))
            else:
                err = SourceError(code, "upstream said no")
                reports.append(SourceReport(name, SourceStatus.FAILED, 0, 5, False, err))
        return EnrichmentResult({"skills": []}, tuple(reports), ResultStatus.SUCCESS, False, 5)


def _half_open(store: MemoryStore, clock: FakeClock) -> str:
    """GitHub's breaker opened 6 minutes ago, its time up a minute ago: its probe document."""
    until = clock.now - timedelta(minutes=1)
    b = {"state": "open", "since": until - timedelta(minutes=5), "until": until}
    set_config(store, breakers={"github": b})
    return breaker_probe_path("github", until)


def _app(store: MemoryStore, clock: FakeClock) -> tuple[App, GitHubAnswers]:
    """The use cases over ``store`` with a premium user ``pat``, and their engine."""
    engine = GitHubAnswers()
    seed_user(store, "pat", premium=True)
    return App(load_settings({}), store, engine, now=clock, rng=lambda n: 0), engine


def _github(out: dict[str, Any]) -> dict[str, Any]:
    found: list[dict[str, Any]] = [s for s in out["sources"] if s["source"] == "github"]
    assert len(found) == 1
    return found[0]


def test_three_probes_reach_the_source_past_the_cache_and_record_their_outcomes(
    store: MemoryStore, clock: FakeClock
) -> None:
    svc, engine = _app(store, clock)
    path = _half_open(store, clock)
    engine.github = "upstream"
    enrich.run(svc, Caller("pat"), REQUEST)
    engine.github = "ok"
    enrich.run(svc, Caller("pat"), REQUEST)
    engine.github = "not_found"  # the source answered: not a failure upstream
    enrich.run(svc, Caller("pat"), REQUEST)
    assert [c.sources for c in engine.calls] == [("github", "linkedin")] * PROBES_PER_HALF_OPEN
    assert all(c.force_refresh for c in engine.calls)  # a probe must not be a cache hit
    doc = store.docs[path]
    assert (doc["calls"], doc["failedUpstream"], doc["answered"]) == (3, 1, 2)
    out = enrich.run(svc, Caller("pat"), REQUEST)  # the fourth call: no ticket left
    assert _github(out)["status"] == "skipped" and _github(out)["error"]["code"] == "disabled"
    assert engine.calls[-1].sources == ("linkedin",) and not engine.calls[-1].force_refresh
    assert store.docs[path]["answered"] == 2  # nothing recorded for a call that did not probe


def test_a_call_without_a_half_open_source_keeps_the_cache(
    store: MemoryStore, clock: FakeClock
) -> None:
    svc, engine = _app(store, clock)
    set_config(store)
    enrich.run(svc, Caller("pat"), REQUEST)
    assert not engine.calls[-1].force_refresh
    assert not [p for p in store.docs if p.startswith("external_data_breaker_probes/")]


def test_a_probe_outcome_that_cannot_be_written_is_logged_and_the_call_served(
    store: MemoryStore, clock: FakeClock, caplog: Any
) -> None:
    class OutcomeWriteFails(MemoryStore):
        def increment(self, path: str, field_name: str, by: int, extra: Any) -> int:
            if field_name in ("answered", "failedUpstream"):
                raise StoreError("unavailable")
            return super().increment(path, field_name, by, extra)

    broken = OutcomeWriteFails()
    svc, _ = _app(broken, clock)
    path = _half_open(broken, clock)
    out = enrich.run(svc, Caller("pat"), REQUEST)
    assert _github(out)["status"] == "success"
    assert broken.docs[path]["calls"] == 1 and "answered" not in broken.docs[path]
    assert "probe outcome not recorded" in caplog.text


def test_a_half_open_breaker_without_a_start_lets_calls_run_unprobed(
    store: MemoryStore, clock: FakeClock
) -> None:
    svc, engine = _app(store, clock)
    set_config(store, breakers={"github": {"state": "half_open"}})  # written by hand: no since
    out = enrich.run(svc, Caller("pat"), REQUEST)
    assert _github(out)["status"] == "success" and not engine.calls[-1].force_refresh
    assert not [p for p in store.docs if p.startswith("external_data_breaker_probes/")]

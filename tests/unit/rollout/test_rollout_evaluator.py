"""Automatic rollback (issue 4, §3): each trigger fires when it should, stays quiet just below its
threshold, acts once per incident, and records its evidence. Synthetic minute aggregates, an
injected clock, MemoryStore; no sleeps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

from gating.rollout import CONFIG_PATH, HISTORY_COLLECTION, RolloutConfig, parse
from rollout_control import changes
from rollout_control.evaluator import evaluate
from stores.base import Write
from stores.memory import MemoryStore
from tests.unit.rollout.conftest import enter_phase


class Logs:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, severity: str, message: str, **fields: Any) -> None:
        self.lines.append((severity, message, fields))

    def severities(self) -> list[str]:
        return [s for s, _, _ in self.lines]


@pytest.fixture
def logs() -> Logs:
    return Logs()


def _phase(store: MemoryStore, phase: str, at: datetime, pct: int | None = None) -> None:
    enter_phase(store, phase, at, pct=pct)


def _history(store: MemoryStore) -> list[dict[str, Any]]:
    return [d for p, d in sorted(store.docs.items()) if p.startswith(HISTORY_COLLECTION + "/")]


def _cfg(store: MemoryStore) -> RolloutConfig:
    return parse(store.docs[CONFIG_PATH])


# -- immediate: error rate > 5 % for 10 consecutive minutes ---------------------------------


def test_error_rate_over_5pct_for_10_minutes_turns_gating_off(
    store: MemoryStore, agg: Any, now: datetime, logs: Logs
) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    agg.minutes(now, 10, requests=100, errors=6)
    res = evaluate(store, now, log=logs)
    assert res.action == "immediate" and res.applied
    assert _cfg(store).components.premiumGating is False
    entry = _history(store)[-1]
    assert entry["action"] == "auto-rollback immediate" and entry["by"] == "evaluator"
    (trig,) = entry["evidence"]["triggers"]
    assert trig["name"] == "error-rate" and trig["threshold"] == 0.05
    assert len(trig["perMinute"]) == 10 and trig["errors"] == 60 and trig["requests"] == 1000
    assert trig["window"]["from"] == datetime(2026, 11, 26, 11, 50, tzinfo=now.tzinfo)
    assert trig["window"]["to"] == datetime(2026, 11, 26, 12, 0, tzinfo=now.tzinfo)
    assert "CRITICAL" in logs.severities()
    assert "Automatic immediate rollback" in res.summary and "error rate above 5%" in res.summary


def test_error_rate_of_exactly_5pct_stays_quiet(
    store: MemoryStore, agg: Any, now: datetime, logs: Logs
) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    agg.minutes(now, 10, requests=100, errors=5)
    res = evaluate(store, now, log=logs)
    assert res.action == "none" and _cfg(store).components.premiumGating is True
    assert "CRITICAL" not in logs.severities()


def test_nine_bad_minutes_are_not_ten(store: MemoryStore, agg: Any, now: datetime) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    agg.minutes(now, 9, requests=100, errors=50)
    agg.traffic(now - timedelta(minutes=10), requests=100, errors=5)  # 11:50 at exactly 5 %
    assert evaluate(store, now).action == "none"


def test_a_quiet_minute_is_judged_within_the_window(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    agg.minutes(now, 10, requests=100, errors=50)
    store.docs = {p: d for p, d in store.docs.items() if "m_2026-11-26T11:55" not in p}
    assert evaluate(store, now).action == "immediate"


def test_a_busy_minute_under_the_threshold_holds_the_rollback(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    agg.minutes(now, 10, requests=100, errors=50)
    agg.traffic(now - timedelta(minutes=4), requests=1000, errors=0)  # 11:56: 50 of 1100 fail
    assert evaluate(store, now).action == "none"


def test_quiet_minutes_count_only_through_the_window(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _phase(store, "beta", now - timedelta(hours=2))
    # 10 quiet minutes (under 20 answers each) at 10% errors: none is judged alone, the window
    # (60 answers, 6 failures from 5 users) is, so a quiet beta is still watched.
    agg.minutes(now, 6, requests=6, errors=1, failing_users=5)
    agg.minutes(now, 10, requests=0)
    assert evaluate(store, now).action == "none"  # only 36 answers: under the window's 50
    agg.minutes(now, 10, requests=3)
    assert evaluate(store, now).action == "immediate"


def test_the_running_minute_is_not_used(store: MemoryStore, agg: Any, now: datetime) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    agg.minutes(now, 10, requests=100, errors=1)
    agg.traffic(now, requests=5000, errors=5000)  # 12:00 is still filling
    assert evaluate(store, now).action == "none"


def test_one_user_failing_never_trips_a_rollback(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _phase(store, "beta", now - timedelta(hours=2))
    agg.minutes(now, 10, requests=100, errors=100, failing_users=1, successful=0)
    assert evaluate(store, now).action == "none"
    agg.minutes(now, 10, requests=0, failing_users=4)
    assert evaluate(store, now).action == "none"  # four distinct users: still not enough
    agg.minutes(now, 10, requests=0, failing_users=5)
    assert evaluate(store, now).action == "immediate"


# -- immediate: no successful call for 2 minutes while calls fail ----------------------------


def test_no_success_for_2_minutes_while_failing_turns_gating_off(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _phase(store, "beta", now - timedelta(hours=2))
    agg.minutes(now, 2, requests=3, errors=3)
    res = evaluate(store, now)
    assert res.action == "immediate"
    assert [t["name"] for t in _history(store)[-1]["evidence"]["triggers"]] == ["no-success"]


def test_one_success_in_the_2_minutes_stays_quiet(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _phase(store, "beta", now - timedelta(hours=2))
    agg.minutes(now, 2, requests=3, errors=3)
    agg.traffic(now - timedelta(minutes=2), requests=1)
    assert evaluate(store, now).action == "none"


def test_an_upstream_outage_with_a_few_service_failures_never_turns_gating_off(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    """Contract 6: no third-party outage can move the rollback. Every source failing upstream
    leaves no successful enrichment, yet each was answered by a working service."""
    _phase(store, "full", now - timedelta(hours=2))
    agg.minutes(now, 2, requests=203, errors=3, failed=200)
    res = evaluate(store, now)
    assert res.action == "none"
    (outage,) = [t for t in res.assessment.triggers if t.name == "no-success"]
    assert not outage.fired and outage.evidence["served"] == 400


def test_refusals_are_no_evidence_that_the_service_works(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    """Every admitted call failing while the rest are refused (the gate, the limits) is still
    no success: the refusals say nothing about the enrichment."""
    _phase(store, "full", now - timedelta(hours=2))
    agg.minutes(now, 2, requests=203, errors=3, successful=0, extra={"denied": 200})
    assert evaluate(store, now).action == "immediate"


def test_one_failing_minute_is_not_two(store: MemoryStore, agg: Any, now: datetime) -> None:
    _phase(store, "beta", now - timedelta(hours=2))
    agg.traffic(now - timedelta(minutes=1), requests=3, errors=3)
    assert evaluate(store, now).action == "none"


# -- immediate: during beta, error rate > 2 % for 10 minutes -------------------------------


def test_beta_error_rate_over_2pct_turns_gating_off(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _phase(store, "beta", now - timedelta(hours=2))
    agg.minutes(now, 10, requests=100, errors=3)
    res = evaluate(store, now)
    assert res.action == "immediate"
    assert [t["name"] for t in _history(store)[-1]["evidence"]["triggers"]] == ["beta-error-rate"]


def test_beta_error_rate_of_exactly_2pct_stays_quiet(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _phase(store, "beta", now - timedelta(hours=2))
    agg.minutes(now, 10, requests=100, errors=2)
    assert evaluate(store, now).action == "none"


def test_3pct_outside_beta_stays_quiet(store: MemoryStore, agg: Any, now: datetime) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    agg.minutes(now, 10, requests=100, errors=3)
    assert evaluate(store, now).action == "none"


# -- once per incident ---------------------------------------------------------------------


def test_immediate_rollback_is_not_repeated(
    store: MemoryStore, agg: Any, now: datetime, logs: Logs
) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    agg.minutes(now, 10, requests=100, errors=50)
    assert evaluate(store, now, log=logs).applied
    n = len(_history(store))
    later = now + timedelta(minutes=1)
    agg.minutes(later, 1, requests=100, errors=50)
    res = evaluate(store, later, log=logs)
    assert res.action == "none" and not res.applied and len(_history(store)) == n
    assert "nothing to roll back" in res.summary
    assert logs.severities().count("CRITICAL") == 1


def test_after_restore_only_fresh_minutes_count(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    agg.minutes(now, 10, requests=100, errors=50)
    evaluate(store, now)
    t1 = now + timedelta(minutes=1)
    changes.restore(store, by="op", reason="source fixed", now=t1)
    agg.minutes(t1, 1, requests=100, errors=50)
    # 10 failing minutes in a row, but 9 of them are the incident already acted on
    assert evaluate(store, t1).action == "none"
    t2 = now + timedelta(minutes=11)
    agg.minutes(t2, 10, requests=100, errors=50)
    res = evaluate(store, t2)
    assert res.action == "immediate" and res.applied


def test_nothing_to_do_when_gating_is_off(store: MemoryStore, agg: Any, now: datetime) -> None:
    agg.minutes(now, 10, requests=100, errors=50)
    res = evaluate(store, now)
    assert res.action == "none" and CONFIG_PATH not in store.docs
    assert "phase is off" in res.summary


def test_dry_run_writes_nothing(store: MemoryStore, agg: Any, now: datetime) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    agg.minutes(now, 10, requests=100, errors=50)
    before = store.docs[CONFIG_PATH]["version"]
    res = evaluate(store, now, dry_run=True)
    assert res.action == "immediate" and not res.applied
    assert store.docs[CONFIG_PATH]["version"] == before
    assert res.summary.count("DRY RUN") == 1


# -- gradual: the cohort against the users outside it --------------------------------------


def _guard(
    agg: Any, now: datetime, in_side: dict[str, Any], out_side: dict[str, Any], minutes: int = 30
) -> None:
    for k in range(1, minutes + 1):
        agg.traffic(now - timedelta(minutes=k), cohort_in=in_side, cohort_out=out_side)


def test_cohort_p95_40_percent_worse_takes_one_gradual_step(
    store: MemoryStore, agg: Any, now: datetime, logs: Logs
) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    _guard(agg, now, {"requests": 2, "lat_ms": 420.0}, {"requests": 2, "lat_ms": 300.0})
    res = evaluate(store, now, log=logs)
    assert res.action == "gradual" and res.applied
    cfg = _cfg(store)
    assert (cfg.phase.value, cfg.rolloutPercentage) == ("premium", 12)
    (trig,) = _history(store)[-1]["evidence"]["triggers"]
    assert trig["name"] == "cohort-latency" and trig["in"]["latencyCalls"] == 60
    assert trig["window"]["minutes"] == 30
    assert "CRITICAL" in logs.severities() and "ERROR" not in logs.severities()  # contract 6


def test_cohort_p95_well_within_20_percent_stays_quiet(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    # 300 ms vs 270 ms is +11 %: with 5 % buckets it reads as at most +17 %, not "over 20 %"
    _guard(agg, now, {"requests": 2, "lat_ms": 300.0}, {"requests": 2, "lat_ms": 270.0})
    assert evaluate(store, now).action == "none"


def test_cohort_latency_needs_50_calls_a_side(store: MemoryStore, agg: Any, now: datetime) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    agg.traffic(
        now - timedelta(minutes=3),
        cohort_in={"requests": 49, "lat_ms": 900.0},
        cohort_out={"requests": 80, "lat_ms": 300.0},
    )
    res = evaluate(store, now)
    assert res.action == "none" and "need 50" in res.summary
    agg.traffic(now - timedelta(minutes=4), cohort_in={"requests": 1, "lat_ms": 900.0})
    assert evaluate(store, now).action == "gradual"


def test_conversion_drop_over_half_takes_one_gradual_step(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    agg.traffic(
        now - timedelta(minutes=5),
        cohort_in={"previews": 60, "gateShown": 40, "conversions": 4},
        cohort_out={"previews": 100, "conversions": 10},
    )
    res = evaluate(store, now)
    assert res.action == "gradual"
    assert _history(store)[-1]["evidence"]["triggers"][0]["name"] == "cohort-conversion"


def test_conversion_drop_of_exactly_half_stays_quiet(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    agg.traffic(
        now - timedelta(minutes=5),
        cohort_in={"previews": 60, "gateShown": 40, "conversions": 5},
        cohort_out={"previews": 100, "conversions": 10},
    )
    assert evaluate(store, now).action == "none"


def test_with_too_few_outside_the_phase_baseline_decides(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    agg.traffic(
        now - timedelta(minutes=5),
        cohort_in={"previews": 100, "conversions": 6},
        cohort_out={"previews": 49, "conversions": 10},
    )
    res = evaluate(store, now)  # 6% against the 10% floor (no gated phase before): holds
    assert res.action == "none" and "phase baseline 10.0%" in res.summary
    agg.traffic(now - timedelta(minutes=4), cohort_in={"previews": 100, "conversions": 3})
    assert evaluate(store, now).action == "gradual"  # 9 of 200 = 4.5% < half of 10%


def test_conversion_needs_50_exposures_in_the_cohort(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    agg.traffic(now - timedelta(minutes=5), cohort_in={"previews": 49, "conversions": 0})
    assert evaluate(store, now).action == "none"


def test_gradual_waits_for_a_fresh_window_after_each_step(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    bad_in, out = {"requests": 2, "lat_ms": 600.0}, {"requests": 2, "lat_ms": 300.0}
    _guard(agg, now, bad_in, out)
    assert evaluate(store, now).applied  # premium 25 -> 12
    later = now + timedelta(minutes=10)
    _guard(agg, later, bad_in, out, minutes=10)
    res = evaluate(store, later)
    assert res.action == "none" and "waits for" in res.summary
    fresh = now + timedelta(minutes=31)
    _guard(agg, fresh, bad_in, out, minutes=31)
    assert evaluate(store, fresh).applied  # premium 12 -> beta 10
    cfg = _cfg(store)
    assert (cfg.phase.value, cfg.rolloutPercentage) == ("beta", 10)


def test_guard_minutes_before_an_operator_change_do_not_count(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _phase(store, "premium", now - timedelta(minutes=20))
    _guard(agg, now, {"requests": 2, "lat_ms": 600.0}, {"requests": 2, "lat_ms": 300.0})
    assert evaluate(store, now).action == "none"


def test_immediate_wins_over_gradual(store: MemoryStore, agg: Any, now: datetime) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    _guard(agg, now, {"requests": 2, "lat_ms": 600.0}, {"requests": 2, "lat_ms": 300.0})
    agg.minutes(now, 10, requests=100, errors=50)
    res = evaluate(store, now)
    assert res.action == "immediate"
    assert _cfg(store).rolloutPercentage == 25 and not _cfg(store).components.premiumGating


# -- robustness ----------------------------------------------------------------------------


def test_a_racing_operator_change_is_retried_on_fresh_reads(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    agg.minutes(now, 10, requests=100, errors=50)
    real = store.compare_and_set
    raced: list[int] = []

    def racing(
        path: str, expected_version: int, data: Mapping[str, Any], extra: Sequence[Write]
    ) -> None:
        if not raced:
            raced.append(1)
            changes.set_messages(store, {"gate": "x"}, by="op", reason="copy", now=now)
        real(path, expected_version, data, extra)

    store.compare_and_set = racing  # type: ignore[method-assign]
    res = evaluate(store, now)
    assert res.applied and store.docs[CONFIG_PATH]["version"] == 3
    assert store.docs[CONFIG_PATH]["messages"] == {"gate": "x"}


def test_an_unreadable_config_is_reported_not_acted_on(
    store: MemoryStore, agg: Any, now: datetime, logs: Logs
) -> None:
    store.commit([Write(CONFIG_PATH, {"phase": "gamma", "version": 3}, merge=False)])
    agg.minutes(now, 10, requests=100, errors=50)
    res = evaluate(store, now, log=logs)
    assert res.action == "none" and "unreadable" in res.summary
    assert store.docs[CONFIG_PATH]["version"] == 3 and logs.severities() == ["ERROR"]


def test_quiet_summary_reads_as_one_paragraph(store: MemoryStore, agg: Any, now: datetime) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    agg.minutes(now, 10, requests=10)
    res = evaluate(store, now)
    assert "\n" not in res.summary
    assert res.summary.startswith("Evaluated at 2026-11-26 12:00:30 UTC (phase premium, 25%")
    assert "No action" in res.summary


@pytest.mark.parametrize(
    "odd",
    [{"shadow": None}, {"components": {"premiumGating": True, "newThing": True}}],
    ids=["null", "unknown-component"],
)
def test_the_evaluator_judges_the_config_the_functions_serve(
    store: MemoryStore, agg: Any, now: datetime, odd: dict[str, Any]
) -> None:
    # The functions apply a config with a null or an unknown name (the rest of it); the
    # evaluator called it unreadable and did nothing through a real incident.
    _phase(store, "full", now - timedelta(hours=2))
    store.docs[CONFIG_PATH].update(odd)
    agg.minutes(now, 10, requests=100, errors=30, failing_users=12)
    res = evaluate(store, now)
    assert res.action == "immediate" and res.applied
    assert store.docs[CONFIG_PATH]["components"]["premiumGating"] is False

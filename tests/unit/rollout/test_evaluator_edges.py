"""The evaluator's rules at their exact edges, and what a fired rule records (found by mutation
testing, issue 13): a minute of exactly 20 answers is judged alone, a window of exactly 50
answers is enough, a window of exactly 5% is not above 5%, one failure a minute is a failing
minute, exactly 50 exposures a side are compared, and a rollback mark inside the window's first
minute makes it the same incident. Synthetic minutes through the real recorder (conftest)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from rollout_control.evaluator import Trigger, evaluate
from stores.memory import MemoryStore
from tests.unit.rollout.conftest import enter_phase


def _full(store: MemoryStore, now: datetime) -> None:
    enter_phase(store, "full", now - timedelta(hours=2))


def _premium(store: MemoryStore, now: datetime) -> None:
    enter_phase(store, "premium", now - timedelta(hours=2))


def _trigger(store: MemoryStore, now: datetime, name: str) -> Trigger:
    result = evaluate(store, now, dry_run=True)
    return next(t for t in result.assessment.triggers if t.name == name)


def _minute(now: datetime, k: int) -> datetime:
    """``k`` complete minutes back (1 = the last complete minute), 5 s into it."""
    return now.replace(second=0, microsecond=0) - timedelta(minutes=k) + timedelta(seconds=5)


def test_a_minute_of_exactly_20_answers_is_judged_alone(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _full(store, now)
    for k in range(2, 11):  # nine minutes at 10%
        agg.traffic(_minute(now, k), requests=20, errors=2)
    agg.traffic(_minute(now, 1), requests=20, errors=0)  # 20 answers: judged, and clean
    assert not _trigger(store, now, "error-rate").fired


def test_a_window_of_exactly_50_answers_is_enough(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _full(store, now)
    for k in range(1, 11):  # ten quiet minutes of 5 answers, one failure each: 10%
        agg.traffic(_minute(now, k), requests=5, errors=1)
    trig = _trigger(store, now, "error-rate")
    assert trig.fired and trig.evidence["requests"] == 50


def test_a_window_of_exactly_5_percent_is_not_above_it(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _full(store, now)
    agg.traffic(_minute(now, 1), requests=40, errors=4)  # judged alone: 10%
    for k in range(2, 6):
        agg.traffic(_minute(now, k), requests=10, errors=0)  # the window: 4 of 80 = 5%
    assert not _trigger(store, now, "error-rate").fired


def test_one_failure_in_each_of_two_minutes_without_success_is_an_outage(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _full(store, now)
    for k in (1, 2):
        agg.traffic(_minute(now, k), requests=1, errors=1)
    trig = _trigger(store, now, "no-success")
    assert trig.fired
    assert trig.evidence["rule"] == "no-success" and trig.evidence["errors"] == 2
    assert [r["errors"] for r in trig.evidence["perMinute"]] == [1, 1]
    assert [r["requests"] for r in trig.evidence["perMinute"]] == [1, 1]
    assert trig.evidence["successful"] == 0 and trig.evidence["failingUsers"] == 5


def _mark(store: MemoryStore, kind: str, at: datetime) -> None:
    doc = store.docs["config/externalDataRollout"]
    doc["autoRollback"] = {kind: {"at": at, "trigger": "test"}}


def test_a_rollback_inside_the_first_minute_is_the_same_incident(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _full(store, now)
    for k in range(1, 11):
        agg.traffic(_minute(now, k), requests=20, errors=2)
    first = now.replace(second=0, microsecond=0) - timedelta(minutes=10)
    _mark(store, "immediate", first + timedelta(seconds=30))  # during the window's first minute
    stale = _trigger(store, now, "error-rate")
    assert not stale.fired and stale.text.endswith(
        "(same incident as the last automatic rollback: not repeated)"
    )
    assert stale.text.startswith("error rate above 5% over the last 10 minutes")
    _mark(store, "immediate", first)  # exactly at its start: these minutes are all after it
    assert _trigger(store, now, "error-rate").fired


def test_an_outage_mark_inside_its_first_minute_is_the_same_incident(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _full(store, now)
    for k in (1, 2):
        agg.traffic(_minute(now, k), requests=3, errors=3)
    first = now.replace(second=0, microsecond=0) - timedelta(minutes=2)
    _mark(store, "immediate", first + timedelta(seconds=30))
    stale = _trigger(store, now, "no-success")
    assert not stale.fired and stale.text.endswith(
        "(same incident as the last automatic rollback: not repeated)"
    )

    assert stale.text.startswith("no successful call in the last 2 minutes (11:58-12:00 UTC)")
    _mark(store, "immediate", first)
    assert _trigger(store, now, "no-success").fired


def test_exactly_50_exposures_a_side_are_compared(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _premium(store, now)
    agg.traffic(
        _minute(now, 3),
        cohort_in={"previews": 50, "conversions": 1},
        cohort_out={"previews": 50, "conversions": 10},
    )
    trig = _trigger(store, now, "cohort-conversion")
    assert trig.fired
    assert trig.evidence["rule"] == "cohort-conversion" and trig.evidence["threshold"] == 0.5
    assert trig.evidence["drop"] == 0.9  # 2% against 20%
    assert "(drop 90%, limit 50%)" in trig.text


def test_a_fired_latency_rule_records_how_much_worse(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _premium(store, now)
    agg.traffic(
        _minute(now, 3),
        cohort_in={"requests": 60, "lat_ms": 600.0},
        cohort_out={"requests": 60, "lat_ms": 300.0},
    )
    trig = _trigger(store, now, "cohort-latency")
    assert trig.fired and trig.kind == "gradual"
    assert trig.evidence["rule"] == "cohort-latency" and trig.evidence["threshold"] == 0.2
    worse = trig.evidence["in"]["p95Ms"] / trig.evidence["out"]["p95Ms"] - 1
    assert trig.evidence["worse"] == round(worse, 4) and 0.9 < worse < 1.1
    assert f"({worse * 100:+.0f}%, limit +20%)" in trig.text


def test_what_the_immediate_rules_say_and_record(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _full(store, now)
    for k in range(1, 11):
        agg.traffic(_minute(now, k), requests=20, errors=2)
    result = evaluate(store, now, dry_run=True)
    rate, outage = result.assessment.triggers[:2]
    end = now.replace(second=0, microsecond=0)
    assert (rate.name, rate.kind, rate.fired) == ("error-rate", "immediate", True)
    assert rate.text == (
        "error rate above 5% over the last 10 minutes (11:50-12:00 UTC): 20 service failures "
        "of 200 answers (10.0%), 5 distinct user(s) failing, 10 minute(s) with 20+ answers"
    )
    window = {"from": end - timedelta(minutes=10), "to": end, "minutes": 10}
    assert {k: v for k, v in rate.evidence.items() if k != "perMinute"} == {
        "rule": "error-rate",
        "threshold": 0.05,
        "window": window,
        "requests": 200,
        "errors": 20,
        "failingUsers": 5,
    }
    assert rate.evidence["perMinute"][0] == {
        "minute": end - timedelta(minutes=10),
        "requests": 20,
        "errors": 2,
        "errorRate": 0.1,
    }
    assert (outage.name, outage.fired) == ("no-success", False)
    assert outage.text == (
        "last 2 minutes: 36 successful call(s), 36 answered without a service failure, 4 service"
        " failure(s) for 5 distinct user(s)"
    )
    assert {k: v for k, v in outage.evidence.items() if k != "perMinute"} == {
        "rule": "no-success",
        "window": {"from": end - timedelta(minutes=2), "to": end, "minutes": 2},
        "successful": 36,
        "served": 36,
        "errors": 4,
        "failingUsers": 5,
    }
    assert outage.evidence["perMinute"][1] == {
        "minute": end - timedelta(minutes=1),
        "requests": 20,
        "errors": 2,
        "successful": 18,
        "served": 18,
    }


def test_what_the_gradual_rules_say_when_they_cannot_compare(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _premium(store, now)
    agg.traffic(_minute(now, 3), cohort_in={"requests": 10, "lat_ms": 600.0, "previews": 10})
    latency, conversion = evaluate(store, now, dry_run=True).assessment.triggers[2:]
    assert (latency.name, latency.kind, latency.fired) == ("cohort-latency", "gradual", False)
    assert latency.text == (
        "cohort p95 not compared over 11:30-12:00 UTC: 10 calls in the cohort (need 50), "
        "reference: nothing (too few calls outside the cohort, no baseline)"
    )
    assert latency.evidence["rule"] == "cohort-latency"
    assert (conversion.name, conversion.kind, conversion.fired) == (
        "cohort-conversion",
        "gradual",
        False,
    )
    assert conversion.text == (
        "conversion not compared over 11:30-12:00 UTC: 10 exposures in the cohort (need 50), "
        "reference: the phase baseline 10.0% (the plan's 10% floor (0 gated exposures before))"
    )
    assert conversion.evidence["rule"] == "cohort-conversion"

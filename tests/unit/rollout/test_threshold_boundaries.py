"""Rollout thresholds tested one histogram bucket from their edge (issue 13).

Latency histograms have 25%-wide buckets, so the 20% rules (cohort latency, phase stability)
are checked with values exactly one bucket apart (+25%: over the limit) and in the same bucket
(under it); a limit of 30% or 1.5x fails the first. Where the reference is not a bucket (the
phase baseline's recorded p95) the 20% edge itself is checked. Also: the minimum calls for an
hour to count for stability, the minimum stable hours, and completion at exactly 90%.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from common.histogram import bucket_of, percentile
from gating.rollout import Phase, RolloutConfig
from rollout_control import evaluator, health

NOW = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)
BASE = bucket_of(300.0)
"""A latency bucket (p95 295.9 ms); ``BASE + 1`` is the next one (369.9 ms, +25%)."""


def _ms(i: int) -> float:
    return percentile({i: 1}, 0.95)


def test_adjacent_buckets_are_25_percent_apart() -> None:
    # The premise of every test below.
    assert 1.249 < _ms(BASE + 1) / _ms(BASE) < 1.251


# -- cohort latency (evaluator, 20% worse than the outside group or the phase baseline) -----


def _cohort_minutes(
    in_bucket: int, out_bucket: int | None, n_in: int = 60, n_out: int = 60
) -> dict[datetime, dict[str, Any]]:
    minute = NOW.replace(second=0) - timedelta(minutes=5)
    side_in = {"requests": n_in, "lat": {str(in_bucket): n_in}}
    cohort: dict[str, Any] = {"in": side_in}
    if out_bucket is not None:
        cohort["out"] = {"requests": n_out, "lat": {str(out_bucket): n_out}}
    return {minute: {"cohort": cohort}}


def _latency(buckets: dict[datetime, dict[str, Any]], base: dict[str, Any] | None = None) -> Any:
    cfg = RolloutConfig(phase=Phase.PREMIUM, rolloutPercentage=25)
    a = evaluator.assess(cfg, {}, buckets, NOW, baseline=base)
    return next(t for t in a.triggers if t.name == "cohort-latency"), a


def test_cohort_one_bucket_slower_than_outside_takes_a_gradual_step() -> None:
    trig, a = _latency(_cohort_minutes(BASE + 1, BASE))
    assert trig.fired and a.action == "gradual"


def test_cohort_in_the_same_bucket_as_outside_stays_quiet() -> None:
    trig, a = _latency(_cohort_minutes(BASE, BASE))
    assert not trig.fired and a.action == "none"


def test_cohort_latency_against_the_baseline_at_the_20_percent_edge() -> None:
    p95_in = _ms(BASE + 1)
    few_outside = _cohort_minutes(BASE + 1, BASE, n_out=49)  # too few: the baseline is used
    over, _ = _latency(few_outside, {"p95Ms": p95_in / 1.21})
    under, _ = _latency(few_outside, {"p95Ms": p95_in / 1.19})
    assert over.fired and not under.fired
    # Exactly 20% worse is not "more than 20%" (308.25 x 1.2 is 369.9 in floating point too).
    assert p95_in == 308.25 * 1.2
    exact, _ = _latency(few_outside, {"p95Ms": 308.25})
    assert not exact.fired


def test_cohort_latency_needs_50_calls_in_the_cohort_at_the_edge() -> None:
    assert _latency(_cohort_minutes(BASE + 3, BASE, n_in=50))[0].fired
    assert not _latency(_cohort_minutes(BASE + 3, BASE, n_in=49))[0].fired


def test_the_outside_group_needs_50_calls_to_be_the_reference() -> None:
    # 50 outside calls: compared with them (one bucket worse fires). 49: nothing to compare.
    assert _latency(_cohort_minutes(BASE + 1, BASE, n_out=50))[0].fired
    assert not _latency(_cohort_minutes(BASE + 1, BASE, n_out=49))[0].fired


# -- premium phase: stable latency (hourly p95 <= 1.2 x median of hourly p95s) ---------------


def _hour(bucket: int, calls: int) -> dict[str, Any]:
    return {"fn": {"enrichCVWithExternalData": {"lat": {str(bucket): calls}}}}


def _stability(hours: list[tuple[int, int]]) -> health.Check:
    start = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    buckets = {start + timedelta(hours=k): _hour(b, n) for k, (b, n) in enumerate(hours)}
    return next(c for c in health.premium_checks(buckets) if c.name == "stable latency")


def test_one_hour_a_bucket_above_the_median_is_unstable() -> None:
    check = _stability([(BASE, 40)] * 5 + [(BASE + 1, 40)])
    assert check.status == "FAIL" and not check.ok


def test_every_hour_in_the_same_bucket_is_stable() -> None:
    assert _stability([(BASE, 40)] * 6).status == "ok"


def test_an_hour_with_20_calls_counts_and_one_with_19_does_not() -> None:
    quiet = _stability([(BASE, 40)] * 5 + [(BASE + 1, 19)])
    busy = _stability([(BASE, 40)] * 5 + [(BASE + 1, 20)])
    assert quiet.status == "ok" and quiet.numbers["hours"] == 5
    assert busy.status == "FAIL" and busy.numbers["hours"] == 6


def test_stability_needs_3_hours_with_enough_calls() -> None:
    assert _stability([(BASE, 40)] * 2 + [(BASE, 19)] * 4).status == "no data"
    assert _stability([(BASE, 40)] * 3).status == "ok"


# -- beta: completion > 90% -------------------------------------------------------------------


def _beta(successful: int, failed: int) -> health.Check:
    t = {"c": {"successful": successful, "failed": failed}}
    return next(c for c in health.beta_checks(t) if c.name == "completion")


def test_completion_of_exactly_90_percent_fails_and_just_above_passes() -> None:
    assert _beta(90, 10).status == "FAIL"
    assert _beta(901, 99).status == "ok"  # 90.1%
    assert _beta(0, 0).status == "no data"

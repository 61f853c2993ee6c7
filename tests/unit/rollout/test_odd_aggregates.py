"""An odd aggregate document in the evaluator's window (a hand edit, a shard written by an
older or broken writer) must not stop the evaluator: while it crashed, no rollback and no
breaker could act for as long as the document stayed in the window. Each odd leaf is ignored
by the readers (``analytics.metrics``, ``common.histogram``); the rest of the minute counts."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import pytest

from analytics.metrics import num, read_buckets
from common.histogram import BOUNDS, bucket_of, merge, percentile
from rollout_control.evaluator import evaluate
from stores.memory import MemoryStore
from stores.schema import METRICS, RAW
from tests.unit.rollout.conftest import enter_phase

ODD: dict[str, dict[str, Any]] = {
    "c a number beside c maps": {"c": 7},
    "c.requests NaN": {"c": {"requests": math.nan}},
    "c.requests inf": {"c": {"requests": math.inf}},
    "c.requests -inf": {"c": {"requests": -math.inf}},
    "a latency count that is a map": {"cohort": {"in": {"lat": {"100": {"a": 1}}}}},
    "a latency count that is NaN": {"cohort": {"in": {"lat": {"100": math.nan}}}},
    "a latency index past the last bucket": {"cohort": {"in": {"lat": {"999": 60}}}},
    "a negative latency index": {"cohort": {"in": {"lat": {"-1": 60}}}},
}


def _setup(store: MemoryStore, agg: Any, now: datetime, odd: dict[str, Any], first: bool) -> None:
    enter_phase(store, "premium", now - timedelta(hours=2))
    minute = now.replace(second=0) - timedelta(minutes=3)
    doc = {"granularity": RAW, "bucketStart": minute, "shard": 99, **odd}
    if first:  # read before the minute's own shard: the odd leaf is the first of its place
        store.docs[f"{METRICS}/odd"] = doc
    agg.minutes(
        now,
        30,
        requests=10,
        cohort_in={"requests": 3, "lat_ms": 300},
        cohort_out={"requests": 7, "lat_ms": 300},
    )
    if not first:
        store.docs[f"{METRICS}/odd"] = doc


@pytest.mark.parametrize("first", [True, False], ids=["odd-first", "odd-last"])
@pytest.mark.parametrize("case", list(ODD))
def test_the_evaluator_survives_an_odd_aggregate_and_counts_the_rest(
    store: MemoryStore, agg: Any, now: datetime, case: str, first: bool
) -> None:
    _setup(store, agg, now, ODD[case], first)
    result = evaluate(store, now, log=lambda *a, **k: None)
    assert result.action == "none"
    minute = now.replace(second=0) - timedelta(minutes=3)
    summed = read_buckets(store, "m", minute, minute + timedelta(minutes=1))[minute]
    # The first kind read at a place keeps it: a number read first keeps the maps out.
    kept = not (first and case == "c a number beside c maps")
    assert num(summed, "c.requests") == (10 if kept else 0)
    hist = merge([summed["cohort"]["in"]["lat"]])
    assert hist == {bucket_of(300): 3}
    side = next(t for t in result.assessment.triggers if t.name == "cohort-latency")
    assert side.evidence["in"]["latencyCalls"] == 90
    assert side.evidence["in"]["p95Ms"] == percentile({bucket_of(300): 1}, 0.95)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True, "7", None])
def test_num_reads_anything_but_a_finite_number_as_zero(value: Any) -> None:
    assert num({"c": {"requests": value}}, "c.requests") == 0


def test_merge_drops_bad_counts_and_indices_and_percentile_stays_in_bounds() -> None:
    stored: dict[str, Any] = {
        "3": 2,
        "4": {"a": 1},
        "5": math.nan,
        "6": -4,
        "7": "x",
        "999": 5,
        "-1": 5,
        "x": 1,
    }
    assert merge([stored]) == {3: 2}
    assert percentile({3: 1, len(BOUNDS): 100}, 0.95) == percentile({3: 1}, 0.95)

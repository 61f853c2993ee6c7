"""A phase's checks as ``status`` shows them and ``advance`` records them as evidence (found by
mutation testing, issue 13): every field of every check for known figures, and with no data.
The values were worked out by hand: 100 calls, 99 in the (287.1, 301.4] ms bucket (read as its
geometric middle, 294.1 ms) and one four buckets up, have a p95 of 294.1 ms; 95 of 100
completed; 5 conversions of 40 exposures are 12.5%; of four hours at 40 calls, one four buckets
slower (294.1 x 1.05^4 = 357.5 ms), the median is 294.1 ms (1.22x)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from common.histogram import bucket_of
from rollout_control.health import Check, beta_checks, premium_checks

B = bucket_of(300.0)
LAT = "enrichCVWithExternalData"


def test_beta_checks_show_and_record_their_figures() -> None:
    t = {
        "c": {"errors": 2, "successful": 95, "failed": 5, "unauthorizedFull": 1},
        "cohort": {"in": {"previews": 30, "gateShown": 10, "conversions": 5}},
        "fn": {LAT: {"lat": {str(B): 99, str(B + 4): 1}}},
    }
    assert beta_checks(t) == [
        Check("critical errors", "= 0", "2", False, "FAIL", {"errors": 2}),
        Check("p95 latency", "< 2.5 s", "294 ms", True, "ok", {"p95Ms": 294.1, "calls": 100}),
        Check("completion", "> 90%", "95.0% (95/100)", True, "ok", {"successful": 95, "failed": 5}),
        Check(
            "preview->premium conversion",
            "> 10%",
            "12.5% (5/40)",
            True,
            "ok",
            {"conversions": 5, "previews": 30, "gateShown": 10},
        ),
        Check("unauthorized full access", "= 0", "1", False, "FAIL", {"unauthorizedFull": 1}),
    ]


def test_beta_checks_without_data() -> None:
    assert beta_checks({}) == [
        Check("critical errors", "= 0", "0", True, "ok", {"errors": 0}),
        Check("p95 latency", "< 2.5 s", "-", False, "no data", {"p95Ms": 0.0, "calls": 0}),
        Check("completion", "> 90%", "-", False, "no data", {"successful": 0, "failed": 0}),
        Check(
            "preview->premium conversion",
            "> 10%",
            "-",
            False,
            "no data",
            {"conversions": 0, "previews": 0, "gateShown": 0},
        ),
        Check("unauthorized full access", "= 0", "0", True, "ok", {"unauthorizedFull": 0}),
    ]


def _hours() -> dict[datetime, dict[str, Any]]:
    start = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    return {
        start + timedelta(hours=k): {
            "fn": {LAT: {"lat": {str(B + 4 if k == 2 else B): 40}}},
            "c": {"gateShown": 3 if k == 0 else 0, "unauthorizedFull": 1 if k == 1 else 0},
        }
        for k in range(4)
    }


def test_premium_checks_show_and_record_their_figures() -> None:
    assert premium_checks(_hours()) == [
        Check(
            "stable latency",
            "hourly p95 <= 1.2 x median",
            "worst 358 ms at 02:00 vs median 294 ms (1.22x)",
            False,
            "FAIL",
            {
                "hours": 4,
                "medianP95Ms": 294.1,
                "worstP95Ms": 357.5,
                "worstHour": "2026-11-23T02:00:00Z",
            },
        ),
        Check(
            "premium access control",
            "100% held",
            "75.0% (3/4 refused)",
            False,
            "FAIL",
            {"gateShown": 3, "unauthorizedFull": 1},
        ),
    ]


def test_premium_checks_without_data() -> None:
    assert premium_checks({}) == [
        Check(
            "stable latency",
            "hourly p95 <= 1.2 x median",
            "0 hour(s) with >= 20 calls, need 3",
            False,
            "no data",
            {"hours": 0},
        ),
        Check(
            "premium access control",
            "100% held",
            "100% (no attempts)",
            True,
            "ok",
            {"gateShown": 0, "unauthorizedFull": 0},
        ),
    ]

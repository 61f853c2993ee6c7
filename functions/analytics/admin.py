"""Admin analytics (contract 2.4), computed from the aggregates, the funnel and the audit.

Every figure is defined in README.md ("Analytics figures"). Rates are 0, never NaN, when
there is no data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from analytics.metrics import get, num, read_buckets, total
from common import histogram
from stores.base import DocumentStore

ENRICH = "enrichCVWithExternalData"


@dataclass(frozen=True)
class AnalyticsQuery:
    """A validated ``getExternalDataAnalytics`` request: the period and what to break down."""

    start: date
    end: date
    granularity: str
    """``hour`` or ``day``."""
    sources: tuple[str, ...]


def _rate(num_: float, den: float) -> float:
    """A fraction 0..1, 0 with nothing to divide; never rounded: 1 error in 30,000 answers
    rounded to 4 places read 0, which must mean "none"."""
    return min(1.0, max(0.0, num_ / den)) if den > 0 else 0.0


def _lat(doc: dict[str, Any], path: str) -> dict[str, float]:
    return histogram.summary(histogram.merge([get(doc, path) or {}]))


def build_analytics(store: DocumentStore, req: AnalyticsQuery) -> dict[str, Any]:
    """The analytics answer for the request's period."""
    start = datetime.combine(req.start, time(0), tzinfo=UTC)
    end = datetime.combine(req.end, time(0), tzinfo=UTC) + timedelta(days=1)
    g = "h" if req.granularity == "hour" else "d"
    buckets = read_buckets(store, g, start, end)
    all_ = total(buckets)
    return {
        "period": {
            "startDate": req.start.isoformat(),
            "endDate": req.end.isoformat(),
            "granularity": req.granularity,
        },
        "totals": _totals(all_),
        "rates": _rates(store, all_, start, end),
        "latencyMs": _lat(all_, f"fn.{ENRICH}.lat"),
        "bySource": {s: _source_figures(all_, s) for s in req.sources},
        "series": _series(buckets, g, start, end),
        "security": {
            "unauthorizedAttempts": num(all_, "sec.unauthorizedAttempts"),
            "rateLimitViolations": num(all_, "sec.rateLimitViolations"),
            # The security detector's findings (observability.detector), counted where it
            # records them; one source of truth for the callable, the reports and the alert.
            "suspiciousActivity": num(all_, "sec.suspiciousActivity"),
        },
    }


_TOTAL_COUNTERS = (
    "requests",
    "successful",
    "failed",
    "premiumRequests",
    "freeRequests",
    "previews",
    "fullRequests",
    "gateShown",
    "upgradeClicks",
    "conversions",
    "rateLimited",
    "unauthorizedAttempts",
)
"""The period's counters reported as ``totals``, in the answer's key order."""


def _totals(all_: dict[str, Any]) -> dict[str, int]:
    """The period's plain counters; kept apart so the answer's assembly reads as one outline."""
    return {name: num(all_, f"c.{name}") for name in _TOTAL_COUNTERS}


def _rates(
    store: DocumentStore, all_: dict[str, Any], start: datetime, end: datetime
) -> dict[str, float]:
    """The period's rates; apart because two of them need the funnel queries, not only the
    aggregates."""
    funnel_users, converted_users = funnel(store, start, end)
    admitted = num(all_, "c.successful") + num(all_, "c.failed")
    return {
        "successRate": _rate(num(all_, "c.successful"), admitted),
        "errorRate": _rate(num(all_, "c.errors"), num(all_, "c.requests")),
        # Every tried source failed upstream: the third parties' failure, never ours.
        "upstreamFailureRate": _rate(num(all_, "c.upstreamFailures"), num(all_, "c.requests")),
        # The funnel touch may fall just before the period (7-day look-back): numerator and
        # denominator are counted separately, as the contract defines them, and capped at 1.
        "conversionRate": min(1.0, _rate(len(converted_users), len(funnel_users))),
        "previewEngagementRate": _rate(
            len(funnel_users), len(funnel_users | free_users(store, start, end))
        ),
    }


def _source_figures(all_: dict[str, Any], s: str) -> dict[str, Any]:
    """One source's figures for ``bySource``; the same shape for every source asked for."""
    reqs = num(all_, f"src.{s}.requests")
    return {
        "requests": reqs,
        "successful": num(all_, f"src.{s}.successful"),
        "failed": num(all_, f"src.{s}.failed"),
        "timeouts": num(all_, f"src.{s}.timeouts"),
        "upstreamFailures": num(all_, f"src.{s}.upstreamFailures"),
        "cacheHits": num(all_, f"src.{s}.cacheHits"),
        "successRate": _rate(num(all_, f"src.{s}.successful"), reqs),
        "latencyMs": _lat(all_, f"src.{s}.lat"),
    }


def _series(
    buckets: dict[datetime, dict[str, Any]], g: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """One point per hour or day of the period, empty buckets included, so a chart has no
    gaps."""
    step = timedelta(hours=1) if g == "h" else timedelta(days=1)
    series = []
    at = start
    while at < end:
        series.append(_series_point(at, buckets.get(at, {})))
        at += step
    return series


def _series_point(at: datetime, doc: dict[str, Any]) -> dict[str, Any]:
    """The figures of one bucket of the series."""
    breq = num(doc, "c.requests")
    return {
        "bucket": at.isoformat().replace("+00:00", "Z"),
        "requests": breq,
        "successful": num(doc, "c.successful"),
        "errors": num(doc, "c.errors"),
        "errorRate": _rate(num(doc, "c.errors"), breq),
        "upstreamFailures": num(doc, "c.upstreamFailures"),
        "p95Ms": histogram.percentile(histogram.merge([get(doc, f"fn.{ENRICH}.lat") or {}]), 0.95),
        "previews": num(doc, "c.previews"),
        "gateShown": num(doc, "c.gateShown"),
        "conversions": num(doc, "c.conversions"),
        "rateLimited": num(doc, "c.rateLimited"),
    }


def funnel(store: DocumentStore, start: datetime, end: datetime) -> tuple[set[str], set[str]]:
    """(free users who had a preview or a gate in the period, users who turned premium in the
    period within 7 days after a preview or gate)."""
    rows = store.query(
        "events",
        [("type", "in", ["preview", "gate"]), ("at", ">=", start), ("at", "<", end)],
        group=True,
    )
    users = {d["uid"] for _, d in rows if d.get("tier") == "free" and isinstance(d.get("uid"), str)}
    conv = store.query(
        "conversions",
        [("precededByFunnel", "==", True), ("at", ">=", start), ("at", "<", end)],
        group=True,
    )
    converted = {d["uid"] for _, d in conv if isinstance(d.get("uid"), str)}
    return users, converted


def free_users(store: DocumentStore, start: datetime, end: datetime) -> set[str]:
    """Free users who asked for an enrichment in the period (any outcome)."""
    rows = store.query(
        "events",
        [("tier", "==", "free"), ("at", ">=", start), ("at", "<", end)],
        group=True,
    )
    return {d["uid"] for _, d in rows if isinstance(d.get("uid"), str)}

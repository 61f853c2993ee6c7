"""Every custom metric the exporter writes, defined once: type, value type, labels, meaning.

Alerts and dashboards under ``monitoring/`` refer to these types only (a test checks it). All
metrics are ``GAUGE``: a point per complete minute holding that minute's figure (custom metrics
cannot be ``DELTA``), with the interval's end at the minute's end. Counts are ``INT64`` and are
written every minute, zeros included, so ratios and "above N in 10 minutes" sums see quiet
minutes; rates and percentiles are ``DOUBLE`` and are written only when they are defined (a minute
without calls has no error rate and no p95).

Figures come from the summed minute aggregate (``external_data_metrics``, docs/architecture.md):
``c`` is the enrichment callable's, ``sec`` every function's security figures, ``fn`` per function.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

PREFIX = "custom.googleapis.com/external_data/"
"""Every type starts with this (the only prefix CreateTimeSeries accepts for custom metrics)."""


class ValueType(StrEnum):
    """``google.api.MetricDescriptor.ValueType`` names used here."""

    INT64 = "INT64"
    DOUBLE = "DOUBLE"


@dataclass(frozen=True)
class MetricDef:
    """One custom metric."""

    name: str
    """The part after ``PREFIX``."""
    value_type: ValueType
    """INT64 for counts, DOUBLE for rates, milliseconds and seconds."""
    labels: tuple[str, ...]
    """Label keys every point carries (and no others)."""
    unit: str
    """UCUM unit of ``MetricDescriptor.unit`` ("1" for counts, "ms", "s", "10^2.%"...)."""
    description: str
    """What the value is, with its source in the aggregate."""

    @property
    def type(self) -> str:
        """The full metric type, ``custom.googleapis.com/external_data/<name>``."""
        return PREFIX + self.name


INT, DBL = ValueType.INT64, ValueType.DOUBLE

ANSWERS = MetricDef(
    "answers",
    INT,
    ("function", "outcome"),
    "1",
    "Answers of each callable in the minute by outcome: ok, error (a failure of the service: "
    "internal, unavailable, or every tried source failed upstream) or denied (any refusal). "
    "fn.<function>.requests/errors/denied. There is no tier label: the aggregate does not cross "
    "outcome with tier (see requests_by_tier).",
)
REQUESTS_BY_TIER = MetricDef(
    "requests_by_tier",
    INT,
    ("tier",),
    "1",
    "Enrichment calls by the caller's tier: premium, free, unknown (refused before the tier was "
    "known). c.premiumRequests, c.freeRequests, the rest of c.requests.",
)
ENRICHMENTS = MetricDef(
    "enrichments",
    INT,
    ("result",),
    "1",
    "Enrichment calls not refused (denials and limits excluded), by result: successful "
    "(c.successful) or failed (c.failed: no source succeeded, a crash, or the store unavailable, "
    "which may answer before the gate).",
)
SERVICE_FAILURE_RATE = MetricDef(
    "service_failure_rate",
    DBL,
    (),
    "1",
    "c.errors / c.requests of the enrichment callable (0..1); absent in a minute without calls.",
)
UPSTREAM_FAILURE_RATE = MetricDef(
    "upstream_failure_rate",
    DBL,
    (),
    "1",
    "Failed (incl. timed out) source calls / source calls, all sources (0..1); absent without calls.",
)
SOURCE_CALLS = MetricDef(
    "source_calls",
    INT,
    ("source", "result"),
    "1",
    "Calls of each external source by result: successful, failed (not a timeout), timeout. "
    "src.<source>.requests/successful/failed/timeouts.",
)
LATENCY_P50 = MetricDef(
    "latency_p50_ms",
    DBL,
    ("function",),
    "ms",
    "Median latency of the answers that did the work (refusals are not timed), from the minute's "
    "summed histogram fn.<function>.lat (5%-wide buckets); absent without timed calls.",
)
LATENCY_P95 = MetricDef(
    "latency_p95_ms", DBL, ("function",), "ms", "As latency_p50_ms, the 95th percentile."
)
LATENCY_P99 = MetricDef(
    "latency_p99_ms", DBL, ("function",), "ms", "As latency_p50_ms, the 99th percentile."
)
PREVIEWS = MetricDef("previews", INT, (), "1", "Preview answers to free users (c.previews).")
GATES_SHOWN = MetricDef(
    "gates_shown", INT, (), "1", "premium_required refusals shown (c.gateShown)."
)
EXPOSURES = MetricDef(
    "exposures",
    INT,
    (),
    "1",
    "Gate exposures: previews + gates shown, the denominator of the conversion rate.",
)
UPGRADE_CLICKS = MetricDef(
    "upgrade_clicks", INT, (), "1", "upgrade_clicked funnel events (c.upgradeClicks)."
)
CONVERSIONS = MetricDef(
    "conversions", INT, (), "1", "Premium conversions recorded by the trigger (c.conversions)."
)
RATE_LIMITED = MetricDef(
    "rate_limited", INT, (), "1", "Rate-limit refusals, every function (sec.rateLimitViolations)."
)
UNAUTHORIZED = MetricDef(
    "unauthorized",
    INT,
    (),
    "1",
    "Unauthorized attempts (permission denied, someone else's CV), every function "
    "(sec.unauthorizedAttempts).",
)
UNAUTHENTICATED = MetricDef(
    "unauthenticated", INT, (), "1", "Calls without a valid ID token (sec.unauthenticated)."
)
UNAUTHORIZED_FULL = MetricDef(
    "unauthorized_full",
    INT,
    (),
    "1",
    "Full answers to non-premium users inside the gate (c.unauthorizedFull); must stay 0.",
)
SOURCE_BREAKER_OPEN = MetricDef(
    "source_breaker_open",
    INT,
    ("source",),
    "1",
    "1 while the source's circuit breaker is open (calls to it short-circuited), else 0.",
)
ROLLOUT_PHASE = MetricDef(
    "rollout_phase",
    INT,
    (),
    "1",
    "The rollout phase as a number: off 0, beta 1, premium 2, full 3 (PHASES).",
)
ROLLOUT_PERCENTAGE = MetricDef(
    "rollout_percentage", INT, (), "%", "rolloutPercentage of the rollout config (0..100)."
)
EVALUATOR_HEARTBEAT_AGE = MetricDef(
    "evaluator_heartbeat_age",
    DBL,
    (),
    "s",
    "Seconds from the evaluator's last run to the minute's end. Not written when the evaluator "
    "never ran, so the absence alert fires.",
)

METRICS: tuple[MetricDef, ...] = (
    ANSWERS,
    REQUESTS_BY_TIER,
    ENRICHMENTS,
    SERVICE_FAILURE_RATE,
    UPSTREAM_FAILURE_RATE,
    SOURCE_CALLS,
    LATENCY_P50,
    LATENCY_P95,
    LATENCY_P99,
    PREVIEWS,
    GATES_SHOWN,
    EXPOSURES,
    UPGRADE_CLICKS,
    CONVERSIONS,
    RATE_LIMITED,
    UNAUTHORIZED,
    UNAUTHENTICATED,
    UNAUTHORIZED_FULL,
    SOURCE_BREAKER_OPEN,
    ROLLOUT_PHASE,
    ROLLOUT_PERCENTAGE,
    EVALUATOR_HEARTBEAT_AGE,
)
"""Every custom metric, in the order the exporter writes them."""

BY_TYPE: dict[str, MetricDef] = {m.type: m for m in METRICS}
"""Lookup by full metric type."""

PHASES: dict[str, int] = {"off": 0, "beta": 1, "premium": 2, "full": 3}
"""``rollout_phase`` values."""

ENRICH_FN = "enrichCVWithExternalData"
"""The gated callable; its answers are written every minute, zeros included."""

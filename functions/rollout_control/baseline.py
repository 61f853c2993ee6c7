"""A phase's baseline (contract section 6), recorded when the phase starts, for the gradual
rules where the users outside the cohort are too few to compare with (phase ``full`` has none):

- ``p95Ms``: the enrichment's p95 over the 7 days before the phase began (hour aggregates; the
  cohorts' histograms, which leave out calls that waited on a source failing upstream);
- ``conversionRate``: the conversion of the gated users in the previous phase
  (``cohort.in.conversions / (previews + gateShown)`` from that phase's start to this one's); in
  beta, which has no gated phase before it, the plan's 10% alert floor.

The evaluator keeps it in ``config/externalDataEvaluator`` (with its heartbeat) and shows it in
``rollout.py status``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from analytics.metrics import get, num, read_buckets, total
from common.histogram import count, merge, percentile
from common.vocab import Fn
from gating.rollout import Phase, RolloutConfig
from stores.base import DocumentStore

LOOKBACK = timedelta(days=7)
PREVIOUS_PHASE_MAX = timedelta(days=30)
"""How far back the previous phase is read when its start is unknown."""
MIN_CALLS = 50
MIN_EXPOSURES = 50
BETA_FLOOR = 0.10


def is_current(baseline: Mapping[str, Any] | None, cfg: RolloutConfig) -> bool:
    """Whether ``baseline`` was taken for the config's current phase."""
    if not baseline:
        return False
    return bool(
        baseline.get("phase") == cfg.phase.value and baseline.get("phaseSince") == cfg.phaseSince
    )


def capture(
    store: DocumentStore,
    cfg: RolloutConfig,
    previous: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    """The baseline of the current phase; ``previous`` is the last phase's baseline (its
    ``phaseSince`` bounds the previous phase)."""
    since = cfg.phaseSince or now
    before = total(read_buckets(store, "h", since - LOOKBACK, since))
    # The cohorts' histograms, as the trigger compares them: calls that waited on a failing
    # source are not in them. Hours recorded before those existed: every enrichment.
    hist = merge([get(before, "cohort.in.lat") or {}, get(before, "cohort.out.lat") or {}])
    if count(hist) < MIN_CALLS:
        hist = merge([get(before, f"fn.{Fn.ENRICH.value}.lat") or {}])
    p95 = percentile(hist, 0.95) if count(hist) >= MIN_CALLS else None
    out: dict[str, Any] = {
        "phase": cfg.phase.value,
        "phaseSince": cfg.phaseSince,
        "capturedAt": now,
        "p95Ms": p95,
        "p95Calls": count(hist),
    }
    out.update(_conversion(store, cfg, previous, since))
    return out


def _conversion(
    store: DocumentStore,
    cfg: RolloutConfig,
    previous: Mapping[str, Any] | None,
    since: datetime,
) -> dict[str, Any]:
    if cfg.phase is Phase.BETA:
        return {"conversionRate": BETA_FLOOR, "conversionBasis": "the plan's 10% floor (beta)"}
    prev_since = (previous or {}).get("phaseSince")
    start = prev_since if isinstance(prev_since, datetime) else since - PREVIOUS_PHASE_MAX
    prev = total(read_buckets(store, "h", start, since))
    exposures = num(prev, "cohort.in.previews") + num(prev, "cohort.in.gateShown")
    if exposures < MIN_EXPOSURES:
        return {
            "conversionRate": BETA_FLOOR,
            "conversionBasis": f"the plan's 10% floor ({exposures} gated exposures before)",
        }
    rate = num(prev, "cohort.in.conversions") / exposures
    phase = (previous or {}).get("phase", "the previous phase")
    return {
        "conversionRate": round(rate, 4),
        "conversionBasis": f"gated users in {phase} ({exposures} exposures)",
    }

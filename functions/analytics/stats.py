"""Per-user usage stats (contract 2.3) from what the use case read: zeros for a user with no
history, never NaN or null counts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from analytics.metrics import get, num
from common.clock import iso
from common.vocab import SOURCES, Tier

TOTALS = ("requests", "successful", "failed", "previews", "full", "rateLimited")
PER_SOURCE = ("requests", "successful", "failed")


def user_stats(
    uid: str, tier: Tier, hourly: Mapping[str, Any], usage: Mapping[str, Any]
) -> dict[str, Any]:
    """The stats answer for ``uid``: ``hourly`` as the limiter computed it, ``usage`` the
    user's ``external_data_usage/{uid}`` document (empty when none)."""
    count = num(usage, "durationCount")
    duration_sum = get(usage, "durationMsSum")
    avg = (
        round(float(duration_sum) / count, 1)
        if count and isinstance(duration_sum, int | float)
        else 0
    )
    last = usage.get("lastUsedAt")
    return {
        "userId": uid,
        "tier": tier.value,
        "hourly": dict(hourly),
        "totals": {k: num(usage, f"totals.{k}") for k in TOTALS},
        "bySource": {s: {k: num(usage, f"bySource.{s}.{k}") for k in PER_SOURCE} for s in SOURCES},
        "averageDurationMs": avg,
        "lastUsedAt": iso(last) if isinstance(last, datetime) else None,
    }

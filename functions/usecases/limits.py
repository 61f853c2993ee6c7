"""The rate limits' bookkeeping the use cases share: a closed window's count, one unit of a limit
whose closed window needs no settling, the caller's own tier, and a refusal's ``details``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from common.clock import iso
from gating.entitlements import read_gate_view, tier_of
from gating.ratelimit import RateDecision, SlidingWindowLimiter, Window
from usecases.app import App


def closed_count(app: App, window: Window, doc: Mapping[str, Any] | None, settle: timedelta) -> int:
    """The previous window's count from its document, cached once it can no longer change
    (``settle`` after the boundary: calls that began before it may still land there)."""
    count = int(doc.get("count", 0)) if doc else 0
    if window.at - window.start > settle:
        app.closed_windows.put(window.previous_path, count, window.at)
    return count


def take_unit(app: App, limiter: SlidingWindowLimiter, window: Window, limit: int) -> RateDecision:
    """One unit of a limit whose closed window needs no settling time (one extra call at a
    boundary is harmless): its count from the instance cache or one read."""
    previous = app.closed_windows.get(window.previous_path, window.at)
    if previous is None:
        doc = app.store.get_many([window.previous_path])[window.previous_path]
        previous = closed_count(app, window, doc, timedelta(0))
    return limiter.admit(window, limit, previous)


def own_tier(app: App, uid: str, now: datetime) -> str:
    """The caller's own tier (``free``/``premium``), for a refusal by a limit the same for both
    tiers (funnel events, data rights): one read unless the instance holds the user."""
    user = app.users.get(uid, now)
    if user is None:
        user = read_gate_view(app.store, uid)
    return tier_of(user, now, app.settings.grace_days).value


def limit_details(
    tier: str, rate: RateDecision, now: datetime, scope: str | None = None
) -> dict[str, Any]:
    """The ``details`` of a ``resource-exhausted`` answer (contract section 4); ``scope`` names
    a limit other than the hourly enrichment one (``events``, ``rights``)."""
    return {
        **({"scope": scope} if scope else {}),
        "tier": tier,
        "limit": rate.limit,
        "remaining": 0,
        "resetAt": iso(rate.reset_at),
        "retryAfterSeconds": rate.retry_after_seconds(now),
    }

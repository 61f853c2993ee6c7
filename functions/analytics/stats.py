"""Per-user usage stats (contract 2.3): one batched read, zeros for a user with no history."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from analytics.metrics import get, num
from gating.clock import iso
from gating.decision import decide
from gating.entitlements import Tier, is_premium, rollout_groups
from gating.recording import USAGE
from gating.requests import SOURCES
from gating.rollout import RolloutConfig

if TYPE_CHECKING:
    from gating.service import ExternalDataService


def user_stats(
    svc: ExternalDataService, cfg: RolloutConfig, uid: str, now: datetime
) -> dict[str, Any]:
    """The stats answer for ``uid``."""
    window = svc.limiter.window(uid, now)
    paths = [f"users/{uid}", f"{USAGE}/{uid}", window.current_path, window.previous_path]
    got = svc.store.get_many(paths)
    user, usage = got[paths[0]] or {}, got[paths[1]] or {}
    current = num(got[paths[2]] or {}, "count")
    previous = num(got[paths[3]] or {}, "count")
    premium = is_premium(user, now, svc.settings.grace_days)
    decision = decide(cfg, uid, premium, rollout_groups(user), "full")
    limit_tier = decision.limit_tier
    limit = svc.settings.premium_hourly if limit_tier is Tier.PREMIUM else svc.settings.free_hourly
    rate = svc.limiter.usage(uid, limit, previous, current, now)
    used = max(0, limit - rate.remaining) if cfg.components.rateLimiting else current
    hourly: dict[str, Any] = {
        "limit": limit if cfg.components.rateLimiting else None,
        "used": used,
        "remaining": rate.remaining if cfg.components.rateLimiting else None,
        "resetAt": iso(rate.reset_at),
        "limited": cfg.components.rateLimiting,
    }
    totals = {
        k: num(usage, f"totals.{k}")
        for k in ("requests", "successful", "failed", "previews", "full", "rateLimited")
    }
    by_source = {
        s: {k: num(usage, f"bySource.{s}.{k}") for k in ("requests", "successful", "failed")}
        for s in SOURCES
    }
    count = num(usage, "durationCount")
    duration_sum = get(usage, "durationMsSum")
    avg = (
        round(float(duration_sum) / count, 1)
        if count and isinstance(duration_sum, (int, float))
        else 0
    )
    last = usage.get("lastUsedAt")
    return {
        "userId": uid,
        "tier": Tier.PREMIUM.value if premium else Tier.FREE.value,
        "hourly": hourly,
        "totals": totals,
        "bySource": by_source,
        "averageDurationMs": avg,
        "lastUsedAt": iso(last) if isinstance(last, datetime) else None,
    }

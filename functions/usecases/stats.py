"""``getUserExternalDataUsageStats`` (contract 2.3): a user's own usage; an admin's for anyone."""

from __future__ import annotations

import math
from typing import Any

from analytics.metrics import num
from analytics.stats import user_stats
from common.clock import iso
from common.errors import CallFacts, PermissionDenied
from common.vocab import Fn, Tier
from gating.entitlements import GATE_FIELDS, is_premium
from gating.ratelimit import Window, hourly_limit, weighted
from stores.schema import usage_path, user_path
from usecases import cohort
from usecases.app import App
from usecases.context import CallContext, Caller
from usecases.hooks import Served, handle
from usecases.requests import parse_stats


def run(app: App, caller: Caller, raw: Any) -> dict[str, Any]:
    """Answer one ``getUserExternalDataUsageStats`` call."""
    return handle(Fn.STATS, app, caller, raw, _stats)


def _stats(app: App, ctx: CallContext, raw: Any) -> Served:
    uid = ctx.uid
    req = parse_stats(raw)
    target = req.user_id or uid
    if target != uid and not ctx.caller.admin:
        denied = CallFacts(reason="foreign stats")
        raise PermissionDenied("You can only see your own usage.", facts=denied)
    cfg = app.config.current()
    window = app.limiter.window(target, ctx.now)
    user_doc = user_path(target)
    paths = [user_doc, usage_path(target), window.current_path, window.previous_path]
    got = app.store.get_many(paths, {user_doc: GATE_FIELDS})
    user, usage = got[paths[0]] or {}, got[paths[1]] or {}
    current, previous = num(got[paths[2]] or {}, "count"), num(got[paths[3]] or {}, "count")
    premium = is_premium(user, ctx.now, app.settings.grace_days)
    # The limit the target's enrichments take (shadow mode and cohort seats included).
    limit = hourly_limit(app.settings, cohort.limit_tier(app, cfg, user, target, ctx.now))
    rate = app.limiter.usage(window, limit, previous, current)
    limited = cfg.components.rateLimiting
    hourly = {  # with rate limiting off, unlimited: null like 2.1's usage (contract 2.1)
        "limit": limit if limited else None,
        "used": used(window, previous, current),
        "remaining": rate.remaining if limited else None,
        "resetAt": iso(rate.reset_at) if limited else None,
        "limited": limited,
    }
    tier = Tier.PREMIUM if premium else Tier.FREE
    return Served(user_stats(target, tier, hourly, usage))


def used(window: Window, previous: int, current: int) -> int:
    """The enrichments counted in the sliding hour (the last window's as it weighs now): what
    the limit is measured against, uncapped (after a move to a smaller limit it may exceed it),
    and counted with the limits switched off too."""
    return max(0, math.ceil(round(weighted(window, previous) + current, 9)))

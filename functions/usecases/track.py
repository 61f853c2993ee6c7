"""``trackExternalDataUsage`` (contract 2.2): client funnel events, 60 per user per minute.

The user is always the token's uid; client events never decide conversions (section 5).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from common.clock import iso
from common.errors import CallFacts, ResourceExhausted
from common.vocab import Fn
from usecases.admission import closed_count
from usecases.app import App
from usecases.context import CallContext, Caller
from usecases.hooks import Served, handle
from usecases.requests import parse_track


def run(app: App, caller: Caller, raw: Any) -> dict[str, Any]:
    """Answer one ``trackExternalDataUsage`` call."""
    return handle(Fn.TRACK, app, caller, raw, _track)


def _track(app: App, ctx: CallContext, raw: Any) -> Served:
    uid = ctx.uid
    req = parse_track(raw)
    cfg = app.config.current()
    window = app.track_limiter.window(uid, ctx.now)
    previous = app.closed_windows.get(window.previous_path, ctx.now)
    if previous is None:
        doc = app.store.get_many([window.previous_path])[window.previous_path]
        # Funnel events need no settling time: one extra event at a boundary is harmless.
        previous = closed_count(app, window, doc, timedelta(0))
    rate = app.track_limiter.admit(window, app.settings.track_per_minute, previous)
    if not rate.allowed:
        details = {
            "tier": "events",
            "limit": rate.limit,
            "remaining": 0,
            "resetAt": iso(rate.reset_at),
            "retryAfterSeconds": rate.retry_after_seconds(ctx.now),
        }
        refused = CallFacts(reason=f"limit {rate.limit}/min")
        raise ResourceExhausted("Too many events; slow down.", details, facts=refused)
    recorded = app.settings.analytics_enabled and cfg.components.usageTracking
    return Served(
        {"eventId": ctx.request_id, "recorded": recorded},
        CallFacts(reason=req.event, cv_id=req.cv_id),
        event=req.event,
    )

"""``trackExternalDataUsage`` (contract 2.2): client funnel events, 60 per user per minute.

The user is always the token's uid; client events never decide conversions (section 5).
"""

from __future__ import annotations

from typing import Any

from common.errors import CallFacts, ResourceExhausted
from common.vocab import Fn
from usecases.app import App
from usecases.context import CallContext, Caller
from usecases.hooks import Served, handle
from usecases.limits import limit_details, own_tier, take_unit
from usecases.requests import parse_track


def run(app: App, caller: Caller, raw: Any) -> dict[str, Any]:
    """Answer one ``trackExternalDataUsage`` call."""
    return handle(Fn.TRACK, app, caller, raw, _track)


def _track(app: App, ctx: CallContext, raw: Any) -> Served:
    uid = ctx.uid
    req = parse_track(raw)
    cfg = app.config.current()
    window = app.track_limiter.window(uid, ctx.now)
    # Funnel events need no settling time: one extra event at a boundary is harmless.
    rate = take_unit(app, app.track_limiter, window, app.settings.track_per_minute)
    if not rate.allowed:
        details = limit_details(own_tier(app, uid, ctx.now), rate, ctx.now, "events")
        refused = CallFacts(reason=f"limit {rate.limit}/min")
        raise ResourceExhausted("Too many events; slow down.", details, facts=refused)
    recorded = app.settings.analytics_enabled and cfg.components.usageTracking
    # Not recorded means not counted either: with tracking off the call is recorded as a call
    # of the function (its request count, its audit), never as the funnel event it reported.
    answer = {"eventId": ctx.request_id, "recorded": recorded}
    return Served(
        answer,
        CallFacts(reason=req.event, cv_id=req.cv_id),
        event=req.event if recorded else None,
        unsaved={**answer, "recorded": False},  # the store refused the event: not recorded
    )

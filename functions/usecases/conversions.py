"""The ``users/{uid}`` trigger (contract section 5): a conversion is recorded when the server
sees a subscription turn premium, never from a client's claim."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from common.logs import log
from gating.entitlements import is_premium, paying_before, rollout_groups
from gating.rollout import in_cohort
from stores.base import Inc, Write
from stores.schema import conversion_path, usage_path
from usecases.app import App

FUNNEL_WINDOW = timedelta(days=7)
"""A preview or gate this recent before the upgrade makes it a funnel conversion."""


def subscription_changed(
    app: App,
    uid: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    event_id: str | None = None,
) -> bool:
    """Record a conversion when ``subscription`` turns premium. Returns True if recorded.

    A renewal or a recovery from ``past_due`` is not a conversion: only a user who was not a
    paying subscriber before (free tier, canceled, no subscription, or one that lapsed past the
    grace days: ``paying_before``) converts. The trigger may
    be delivered more than once: ``event_id`` names the conversion document, so a redelivery
    finds it and records nothing.
    """
    now = app.now()
    if not app.settings.conversion_tracking:
        return False
    grace = app.settings.grace_days
    if paying_before(before, now, grace) or not is_premium(after, now, grace):
        return False
    sub = (after or {}).get("subscription")
    if isinstance(sub, Mapping) and sub.get("complimentary") is True:
        return False  # a support grant (scripts/support.py grant) is not a sale
    conv_id = hashlib.sha256(event_id.encode()).hexdigest()[:32] if event_id else uuid.uuid4().hex
    conv_doc = conversion_path(uid, conv_id)
    cfg = app.config.current()
    got = app.store.get_many([usage_path(uid), conv_doc])
    if got[conv_doc] is not None:
        log("INFO", "conversion already recorded (trigger redelivered)", uid=uid)
        return False
    funnel_at = (got[usage_path(uid)] or {}).get("lastFunnelAt")
    preceded = isinstance(funnel_at, datetime) and now - funnel_at <= FUNNEL_WINDOW
    gated = cfg.gating_active and (
        in_cohort(cfg, uid, False, rollout_groups(after)) or not cfg.fallbackEnabled
    )
    counters: dict[str, Any] = {
        "c": {"conversions": Inc(1), **({"convertedAfterFunnel": Inc(1)} if preceded else {})},
        "cohort": {"in" if gated else "out": {"conversions": Inc(1)}},
    }
    conv: dict[str, Any] = {"uid": uid, "at": now, "precededByFunnel": preceded}
    if preceded:
        conv["funnelAt"] = funnel_at
    writes = [
        Write(conv_doc, conv, merge=False),
        Write(usage_path(uid), {"uid": uid, "convertedAt": now}),
        *app.recorder.aggregate_writes(now, counters),
    ]
    app.store.commit(writes)
    log("INFO", "conversion recorded", uid=uid, precededByFunnel=preceded)
    return True

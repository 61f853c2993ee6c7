"""The ``users/{uid}`` trigger (contract section 5): a conversion is recorded when the server
sees a subscription turn premium, never from a client's claim."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from common.logs import log
from common.vocab import Mode
from gating.entitlements import is_premium, paying_before
from stores.base import Inc, Write
from stores.errors import ConfigConflict, Contended
from stores.schema import conversion_path, usage_path
from usecases.app import App
from usecases.cohort import decide_seated, would_have_seat

FUNNEL_WINDOW = timedelta(days=7)
"""A preview or gate this recent before the upgrade makes it a funnel conversion."""
_ATTEMPTS = 3
"""Tries at creating the conversion document when its transaction is aborted (``Contended``)."""


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
    be delivered more than once: ``event_id`` names the conversion document, which is created
    only if absent (``compare_and_set`` from version 0) in one atomic write with its aggregate
    counts, so a redelivery records nothing, even one that overlaps the first delivery.
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
    if got[conv_doc] is not None:  # a redelivery (this read alone finds a version-less doc)
        log("INFO", "conversion already recorded (trigger redelivered)", uid=uid)
        return False
    funnel_at = (got[usage_path(uid)] or {}).get("lastFunnelAt")
    preceded = isinstance(funnel_at, datetime) and now - funnel_at <= FUNNEL_WINDOW
    # Was the user, as a free user, in the gated cohort: the bucket, the groups and, under
    # ``maxCohortUsers``, a seat (a bucket user left without one was served ungated).
    as_free = {"rolloutGroups": (after or {}).get("rolloutGroups")}
    gated = decide_seated(app, cfg, as_free, uid, Mode.FULL, now, would_have_seat).gated
    counters: dict[str, Any] = {
        "c": {"conversions": Inc(1), **({"convertedAfterFunnel": Inc(1)} if preceded else {})},
        "cohort": {"in" if gated else "out": {"conversions": Inc(1)}},
    }
    # ``version`` 1: the document is created once, never replaced (create-if-absent below).
    conv: dict[str, Any] = {"uid": uid, "at": now, "precededByFunnel": preceded, "version": 1}
    if preceded:
        conv["funnelAt"] = funnel_at
    writes = [
        Write(usage_path(uid), {"uid": uid, "convertedAt": now}),
        *app.recorder.aggregate_writes(now, counters),
    ]
    if not _create_once(app, conv_doc, conv, writes):
        log("INFO", "conversion already recorded (trigger redelivered)", uid=uid)
        return False
    log("INFO", "conversion recorded", uid=uid, precededByFunnel=preceded)
    return True


def _create_once(app: App, path: str, doc: dict[str, Any], writes: list[Write]) -> bool:
    """Create ``path`` with ``writes``, atomically, unless it exists: False when another delivery
    created it first. A transaction aborted before anything landed (``Contended``: two racing
    ones can both be aborted) is made again, so the race never loses the conversion."""
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            app.store.compare_and_set(path, 0, doc, writes)
            return True
        except Contended:
            if attempt == _ATTEMPTS:
                raise
        except ConfigConflict:
            return False
    return False  # not reached: the last attempt returns or raises

"""The gate in front of the engine (contract 2.1's order of checks after parsing): load what
the decision needs in at most one batched read, check the CV's owner, decide access, take one
unit of the hourly limit. Every refusal is a domain error carrying its record facts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from common.errors import CallFacts, PermissionDenied, ResourceExhausted
from common.vocab import Tier
from gating.decision import Decision, shadowed
from gating.entitlements import GATE_FIELDS, gate_view, read_gate_view
from gating.ratelimit import RateDecision, Window, hourly_limit
from gating.rollout import CONFIG_PATH, RolloutConfig
from stores.base import read_one
from stores.schema import CV_FIELDS, cv_path, user_path
from usecases import cohort, held_copies
from usecases.app import App
from usecases.context import CallContext
from usecases.limits import closed_count, limit_details
from usecases.requests import EnrichRequest

CLOSED_WINDOW_SETTLE = timedelta(seconds=90)
"""A closed rate window's count is cached only once it can no longer change (calls that
started before the boundary have finished: the function timeout is 60 s)."""


@dataclass
class Loaded:
    """What the gate needs, from the instance caches or one batched read."""

    cfg: RolloutConfig
    user: Mapping[str, Any] | None
    user_fresh: bool
    owner: str | None
    owner_fresh: bool
    previous: int


def load(
    app: App, uid: str, cv_id: str, window: Window, now: datetime, *, reread_cv: bool = False
) -> Loaded:
    """Cached values where fresh, everything else in one batched read (``reread_cv``: the CV
    is read whatever owner the instance holds)."""
    cfg = app.config.fresh(now)
    user = app.users.get(uid, now)
    owner = None if reread_cv else app.owners.get(cv_id, now)
    previous = app.closed_windows.get(window.previous_path, now)
    need = [
        path
        for path, missing in (
            (CONFIG_PATH, cfg is None),
            (user_path(uid), user is None),
            (cv_path(cv_id), owner is None),
            (window.previous_path, previous is None),
        )
        if missing
    ]
    fields = {user_path(uid): GATE_FIELDS, cv_path(cv_id): CV_FIELDS}
    got = app.store.get_many(need, fields) if need else {}
    if cfg is None:
        cfg = app.config.accept(got.get(CONFIG_PATH), now)
    user_fresh = user_path(uid) in got
    if user_fresh:
        user = gate_view(got[user_path(uid)])
        app.users.put(uid, user, now)
    owner_fresh = cv_path(cv_id) in got
    if owner_fresh:
        cv = got[cv_path(cv_id)]
        owner = held_copies.owner_of(app, cv_id, cv, now)
    if previous is None:
        previous = closed_count(app, window, got.get(window.previous_path), CLOSED_WINDOW_SETTLE)
    return Loaded(cfg, user, user_fresh, owner, owner_fresh, previous)


def owner(app: App, loaded: Loaded, cv_id: str, uid: str, now: datetime) -> str | None:
    """The CV's owner; a cached owner that is not the caller is re-read before refusing (and
    ``loaded`` then holds the read, which needs no re-read beside the increment)."""
    if loaded.owner == uid or loaded.owner_fresh:
        return loaded.owner
    cv = read_one(app.store, cv_path(cv_id), CV_FIELDS)
    loaded.owner, loaded.owner_fresh = held_copies.owner_of(app, cv_id, cv, now), True
    return loaded.owner


def _decide(app: App, loaded: Loaded, uid: str, req: EnrichRequest, now: datetime) -> Decision:
    return cohort.decide_seated(app, loaded.cfg, loaded.user, uid, req.mode, now, cohort.has_seat)


def _reread_user(app: App, loaded: Loaded, uid: str, now: datetime) -> None:
    """Never refuse on a cached "free": the user may have just upgraded."""
    loaded.user = read_gate_view(app.store, uid)
    loaded.user_fresh = True
    app.users.put(uid, loaded.user, now)


def gate(
    app: App, ctx: CallContext, loaded: Loaded, req: EnrichRequest, facts: CallFacts
) -> tuple[Decision, CallFacts]:
    """The access decision (contract section 3); ``permission-denied`` for a free user asking
    for full inside the gate. Returns the decision served and the facts to record."""
    decision = _decide(app, loaded, ctx.uid, req, ctx.now)
    if decision.denied and not loaded.user_fresh:
        _reread_user(app, loaded, ctx.uid, ctx.now)
        decision = _decide(app, loaded, ctx.uid, req, ctx.now)
    facts = facts.with_(tier=decision.tier, gated=decision.gated)
    if loaded.cfg.shadow and loaded.cfg.gating_active:
        decision, would = shadowed(decision)
        return decision, facts.with_(gated=False, would=would)
    if decision.denied:
        details: dict[str, Any] = {
            "reason": "premium_required",
            "upgradeUrl": app.settings.upgrade_url,
            "message": loaded.cfg.message_set(("gate",))["gate"],
        }
        refused = facts.with_(reason="premium_required", gated=True, gate_shown=True)
        raise PermissionDenied("Full enrichment needs Premium.", details, facts=refused)
    return decision, facts


@dataclass(frozen=True)
class Admitted:
    rate: RateDecision | None  # None: rate limiting switched off (unlimited, still counted)
    decision: Decision
    """The decision the limit was taken under (re-decided when a cached "free" was stale)."""
    early: Any = None  # what ``meanwhile`` gave
    counted: bool = True  # the unit is in the window's count (fair quota gives it back)


def _limit(app: App, tier: Tier) -> int:
    return hourly_limit(app.settings, tier)


def admit(
    app: App,
    uid: str,
    loaded: Loaded,
    req: EnrichRequest,
    decision: Decision,
    window: Window,
    facts: CallFacts,
    meanwhile: Callable[[], Any] = lambda: None,
) -> Admitted:
    """One unit of the hourly limit (contract section 4), or ``resource-exhausted``. Limits
    lifted: counted all the same (every admitted enrichment counts), never refused. While the
    increment is in flight, ``meanwhile`` runs (``Admitted.early``: it must take nothing)."""
    if not loaded.cfg.components.rateLimiting:
        return Admitted(None, decision, early=meanwhile(), counted=app.limiter.count(window))
    sent = app.limiter.send(window)
    early = meanwhile()
    rate = app.limiter.admit(window, _limit(app, decision.limit_tier), loaded.previous, sent)
    if not rate.allowed and decision.limit_tier is Tier.FREE and not loaded.user_fresh:
        _reread_user(app, loaded, uid, window.at)
        fresh = _decide(app, loaded, uid, req, window.at)
        if fresh.limit_tier is Tier.PREMIUM:
            decision = fresh
            rate = app.limiter.admit(window, _limit(app, Tier.PREMIUM), loaded.previous)
    if rate.allowed:
        return Admitted(rate, decision, early=early)
    details = limit_details(decision.tier.value, rate, window.at)  # the caller's own, as `usage`
    refused = facts.with_(reason=f"limit {rate.limit}/h", tier=decision.tier, gated=decision.gated)
    raise ResourceExhausted("Hourly enrichment limit reached.", details, facts=refused)

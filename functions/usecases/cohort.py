"""``maxCohortUsers`` (contract section 3): the first N distinct users that the percentage
bucket takes into the cohort during a phase get a seat; later ones stay outside for the rest of
the phase. Seats are drawn with atomic increments, so N is exact under concurrency.

A seat is held for the whole phase: an erasure (contract 2.5, ``usecases.erasure``) moves it from
``members/{uid}`` to ``members/{keyed hash of the uid}`` (``kept_seat_path``) instead of
deleting it, and a user's first call of a phase (no ``members/{uid}`` yet) looks there before
drawing (``_decide``; so does a call that finds the first one died undecided). That costs one
read on those calls only; later calls read what they read before."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from common.vocab import Mode, Tier
from gating.decision import Decision, decide, shadowed
from gating.entitlements import is_premium, rollout_groups
from gating.rollout import RolloutConfig, in_cohort_by_bucket_only
from stores.base import Write
from stores.schema import cohort_member_path, cohort_seats_path
from usecases.app import App

SEAT_TTL = timedelta(days=180)


def phase_key(cfg: RolloutConfig) -> str:
    """One phase's seats: a new phase (or a restart of it) starts with none taken."""
    since = cfg.phaseSince.strftime("%Y%m%dT%H%M%S") if cfg.phaseSince else "start"
    return f"{cfg.phase.value}_{since}"


def has_seat(app: App, cfg: RolloutConfig, uid: str, now: datetime) -> bool:
    """Whether ``uid`` holds (or now takes) one of the phase's ``maxCohortUsers`` seats."""
    key = phase_key(cfg)
    cached = app.cohort_seats.get(f"{key}/{uid}", now)
    if cached is not None:
        return cached
    member = cohort_member_path(key, uid)
    expire = {"expireAt": now + SEAT_TTL}
    if app.store.increment(member, "calls", 1, expire) == 1:
        seat = _decide(app, cfg, key, uid, expire)
    else:
        doc = _decided(app, member)
        # None: the user's first call died, or lost its answer, before writing its decision;
        # this call decides (a seat the first one counted stays counted: fewer seats, never
        # more), so the user is not left undecided, waiting, for the whole phase.
        seat = _decide(app, cfg, key, uid, expire) if doc is None else doc["seat"] is True
    app.cohort_seats.put(f"{key}/{uid}", seat, now)
    return seat


def _decide(app: App, cfg: RolloutConfig, key: str, uid: str, expire: dict[str, Any]) -> bool:
    """Decide ``uid``'s seat and write it: the seat an erasure kept, else a draw."""
    kept = kept_seat_path(app, key, uid)
    held = (app.store.get_many([kept])[kept] or {}).get("seat")
    seat = held if isinstance(held, bool) else _draw(app, cfg, key, expire)
    app.store.commit([Write(cohort_member_path(key, uid), {"seat": seat})])
    return seat


UNDECIDED_WAITS_S = (0.05, 0.15, 0.3)
"""How long a call waits, read after read, for a user's first call to write its seat."""


def _decided(app: App, member: str) -> dict[str, Any] | None:
    """The member document once its first call has decided the seat, or ``None``."""
    for wait in (0.0, *UNDECIDED_WAITS_S):
        time.sleep(wait)
        doc = app.store.get_many([member])[member] or {}
        if "seat" in doc:
            return doc
    return None


def _draw(app: App, cfg: RolloutConfig, key: str, expire: dict[str, Any]) -> bool:
    """Take one of the phase's seats if one is left (atomic: the cap is exact)."""
    seats = cohort_seats_path(key)
    taken = app.store.increment(seats, "taken", 1, expire)
    seat = taken <= (cfg.maxCohortUsers or 0)
    if not seat:
        app.store.increment(seats, "taken", -1, {})
    return seat


def kept_seat_path(app: App, key: str, uid: str) -> str:
    """Where an erasure keeps the user's seat: under the keyed hash of the uid."""
    return cohort_member_path(key, app.recorder.hash(uid) or uid)


def would_have_seat(app: App, cfg: RolloutConfig, uid: str, now: datetime) -> bool:
    """``has_seat`` without taking one: the user's seat if decided, else whether one is left."""
    key = phase_key(cfg)
    cached = app.cohort_seats.get(f"{key}/{uid}", now)
    if cached is not None:
        return cached
    member, seats = cohort_member_path(key, uid), cohort_seats_path(key)
    kept = kept_seat_path(app, key, uid)
    got = app.store.get_many([member, seats, kept])
    doc = next((d for d in (got[member], got[kept]) if d and "seat" in d), {})
    if "seat" in doc:
        return doc["seat"] is True
    taken = (got[seats] or {}).get("taken", 0)
    return isinstance(taken, int) and taken < (cfg.maxCohortUsers or 0)


Seat = Callable[[App, RolloutConfig, str, datetime], bool]


def decide_seated(
    app: App,
    cfg: RolloutConfig,
    user: Mapping[str, Any] | None,
    uid: str,
    mode: Mode,
    now: datetime,
    seat: Seat,
) -> Decision:
    """The access decision with ``maxCohortUsers``: a user the bucket takes in is outside the
    cohort without a seat (``seat`` answers, taking one or only looking)."""
    premium = is_premium(user, now, app.settings.grace_days)
    groups = rollout_groups(user)
    if (
        cfg.maxCohortUsers is not None
        and cfg.gating_active
        and in_cohort_by_bucket_only(cfg, uid, premium, groups)
        and not seat(app, cfg, uid, now)
    ):
        cfg = replace(cfg, rolloutPercentage=0)  # the seats are taken: outside the cohort
    return decide(cfg, uid, premium, groups, mode)


def limit_tier(
    app: App, cfg: RolloutConfig, user: Mapping[str, Any] | None, uid: str, now: datetime
) -> Tier:
    """The tier whose hourly limit ``uid``'s enrichments take now (shadow mode and seats as
    ``gate`` applies them), found without taking a seat: what 2.3's ``hourly`` reports."""
    decision = decide_seated(app, cfg, user, uid, Mode.FULL, now, would_have_seat)
    if cfg.shadow and cfg.gating_active:
        decision, _ = shadowed(decision)
    return decision.limit_tier

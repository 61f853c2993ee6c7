"""``maxCohortUsers`` (contract section 3): the first N distinct users that the percentage
bucket takes into the cohort during a phase get a seat; later ones stay outside for the rest of
the phase. Seats are drawn with atomic increments, so N is exact under concurrency."""

from __future__ import annotations

from datetime import datetime, timedelta

from gating.rollout import RolloutConfig
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
        seats = cohort_seats_path(key)
        taken = app.store.increment(seats, "taken", 1, expire)
        seat = taken <= (cfg.maxCohortUsers or 0)
        if not seat:
            app.store.increment(seats, "taken", -1, {})
        app.store.commit([Write(member, {"seat": seat})])
    else:
        doc = app.store.get_many([member])[member] or {}
        if "seat" not in doc:  # the user's first call is still deciding: outside, this once
            return False
        seat = doc["seat"] is True
    app.cohort_seats.put(f"{key}/{uid}", seat, now)
    return seat


def would_have_seat(app: App, cfg: RolloutConfig, uid: str, now: datetime) -> bool:
    """``has_seat`` without taking one: the user's seat if decided, else whether one is left."""
    key = phase_key(cfg)
    cached = app.cohort_seats.get(f"{key}/{uid}", now)
    if cached is not None:
        return cached
    member, seats = cohort_member_path(key, uid), cohort_seats_path(key)
    got = app.store.get_many([member, seats])
    doc = got[member] or {}
    if "seat" in doc:
        return doc["seat"] is True
    taken = (got[seats] or {}).get("taken", 0)
    return isinstance(taken, int) and taken < (cfg.maxCohortUsers or 0)

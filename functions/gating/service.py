"""The four use cases behind the callables. ``main.py`` parses the transport and calls these.

The hot path of ``enrich`` (see docs/architecture.md): at most one batched read (none when the
instance is warm), one atomic increment, the engine, one batched write.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from gating.cache import TTLCache
from gating.clock import Clock, iso, utcnow
from gating.decision import Access, Decision, decide
from gating.entitlements import Tier, is_premium, rollout_groups
from gating.errors import (
    GatingError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    StoreError,
    Unauthenticated,
    Unavailable,
)
from gating.logs import log
from gating.ratelimit import RateDecision, SlidingWindowLimiter, Window
from gating.recording import USAGE, CallRecord, Outcome, Recorder, SourceOutcome
from gating.requests import (
    EnrichRequest,
    parse_analytics,
    parse_enrich,
    parse_stats,
    parse_track,
)
from gating.rollout import CONFIG_PATH, ConfigInvalid, Phase, RolloutConfig, in_cohort, parse
from gating.settings import Settings
from stores.base import DocumentStore, Inc, Write

R = TypeVar("R")

ENRICH = "enrichCVWithExternalData"
TRACK = "trackExternalDataUsage"
STATS = "getUserExternalDataUsageStats"
ANALYTICS = "getExternalDataAnalytics"

FAIL_CLOSED = RolloutConfig(phase=Phase.FULL, fallbackEnabled=False)
"""Used only when the config document is unreadable and no good copy was ever seen: paid
access fails closed (everyone gated), rather than handing premium features to everybody."""

PREVIEW_ITEMS = 3
UNAVAILABLE_MESSAGE = "The service is temporarily unavailable. Please retry."

CLOSED_WINDOW_SETTLE = timedelta(seconds=90)
"""A closed rate window's count is cached only once it can no longer change (calls that
started before the boundary have finished: the function timeout is 60 s)."""


@dataclass(frozen=True)
class Caller:
    """Who is calling, from the transport."""

    uid: str | None
    admin: bool = False
    ip: str | None = None
    user_agent: str | None = None


class Engine(Protocol):
    """What the service needs of the enrichment engine."""

    def enrich(self, inp: Any) -> Any:
        """Run the sources; returns an ``enrichment.engine.EnrichmentResult``."""
        ...


@dataclass
class _Loaded:
    cfg: RolloutConfig
    user: Mapping[str, Any] | None
    user_fresh: bool
    owner: str | None
    owner_fresh: bool
    previous: int


class ExternalDataService:
    """The gating library's use cases, over one document store."""

    def __init__(
        self,
        settings: Settings,
        store: DocumentStore,
        engine: Engine | None = None,
        *,
        engine_factory: Callable[[], Engine] | None = None,
        now: Clock = utcnow,
        rng: Callable[[int], int] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self._engine = engine
        self._engine_factory = engine_factory
        self.now = now
        self.recorder = Recorder(settings, rng=rng)
        self.limiter = SlidingWindowLimiter(store, "enrich", timedelta(hours=1))
        self.track_limiter = SlidingWindowLimiter(store, "track", timedelta(minutes=1))
        ent_ttl = timedelta(seconds=settings.entitlement_ttl_seconds)
        self._users: TTLCache[Mapping[str, Any] | None] = TTLCache(ent_ttl)
        self._owners: TTLCache[str] = TTLCache(ent_ttl)
        self._closed: TTLCache[int] = TTLCache(timedelta(hours=2))
        self._cfg: RolloutConfig | None = None
        self._cfg_expires: datetime | None = None
        self._last_good: RolloutConfig | None = None

    @property
    def engine(self) -> Engine:
        """The enrichment engine, built on first use."""
        if self._engine is None:
            if self._engine_factory is None:
                raise RuntimeError("no enrichment engine configured")
            self._engine = self._engine_factory()
        return self._engine

    # -- config -----------------------------------------------------------------------------

    def _config_fresh(self, now: datetime) -> RolloutConfig | None:
        if self._cfg is not None and self._cfg_expires is not None and now < self._cfg_expires:
            return self._cfg
        return None

    def _accept_config(self, doc: Mapping[str, Any] | None, now: datetime) -> RolloutConfig:
        try:
            cfg = parse(doc)
            self._last_good = cfg
        except ConfigInvalid as exc:
            cfg = self._last_good or FAIL_CLOSED
            log(
                "ERROR",
                "rollout config unreadable; serving the last good config",
                problem=str(exc),
                servingVersion=cfg.version,
            )
        self._cfg = cfg
        self._cfg_expires = now + timedelta(seconds=self.settings.config_ttl_seconds)
        return cfg

    def config(self) -> RolloutConfig:
        """The rollout config, from the instance cache or one read."""
        now = self.now()
        cached = self._config_fresh(now)
        if cached is not None:
            return cached
        try:
            doc = self.store.get_many([CONFIG_PATH])[CONFIG_PATH]
        except StoreError as exc:
            if self._last_good is not None:
                return self._last_good
            raise Unavailable(UNAVAILABLE_MESSAGE) from exc
        return self._accept_config(doc, now)

    def _config_for_recording(self) -> RolloutConfig:
        return self._cfg or self._last_good or RolloutConfig()

    # -- recording --------------------------------------------------------------------------

    def _record(self, rec: CallRecord, cfg: RolloutConfig | None = None) -> None:
        """Commit the call's records in one batch. A failure here is logged with the record
        (so nothing is silently lost) but never changes the caller's answer."""
        writes = self.recorder.writes(rec, cfg or self._config_for_recording())
        try:
            self.store.commit(writes)
        except StoreError as exc:
            log(
                "ERROR",
                "recording failed; the record follows",
                fn=rec.fn,
                outcome=rec.outcome.value,
                uid=rec.uid,
                requestId=rec.request_id,
                durationMs=round(rec.duration_ms, 1),
                error=str(exc),
            )

    def _base(self, fn: str, caller: Caller, started: float, now: datetime) -> dict[str, Any]:
        return {
            "fn": fn,
            "at": now,
            "uid": caller.uid,
            "ip": caller.ip,
            "user_agent": caller.user_agent,
            "duration_ms": (time.perf_counter() - started) * 1000,
        }

    def _refuse(
        self,
        fn: str,
        caller: Caller,
        started: float,
        now: datetime,
        outcome: Outcome,
        error: GatingError,
        cfg: RolloutConfig | None = None,
        **fields: Any,
    ) -> GatingError:
        base = self._base(fn, caller, started, now)
        reason = fields.pop("reason", None) or error.message
        self._record(CallRecord(outcome=outcome, reason=reason, **base, **fields), cfg)
        severity = "WARNING" if outcome in (Outcome.DENIED, Outcome.NOT_FOUND) else "INFO"
        if outcome is Outcome.UNAVAILABLE:
            severity = "ERROR"
        log(severity, f"{fn} refused", outcome=outcome.value, uid=caller.uid, reason=reason)
        return error

    def _store_down(self, fn: str, caller: Caller, started: float, now: datetime) -> GatingError:
        """``unavailable`` for a store failure, recorded (never a free pass)."""
        return self._refuse(
            fn,
            caller,
            started,
            now,
            Outcome.UNAVAILABLE,
            Unavailable(UNAVAILABLE_MESSAGE),
            reason="store unavailable",
        )

    def _authenticated(self, fn: str, caller: Caller, started: float, now: datetime) -> str:
        if not caller.uid:
            raise self._refuse(
                fn,
                caller,
                started,
                now,
                Outcome.UNAUTHENTICATED,
                Unauthenticated("Please sign in first."),
                reason="no ID token",
            )
        return caller.uid

    # -- the hot path -----------------------------------------------------------------------

    def _closed_count(
        self, window: Window, doc: Mapping[str, Any] | None, now: datetime, settle: timedelta
    ) -> int:
        """The previous window's count from its document, cached once it can no longer change
        (``settle`` after the boundary: calls that began before it may still land there)."""
        count = int(doc.get("count", 0)) if doc else 0
        if now - window.start > settle:
            self._closed.put(window.previous_path, count, now)
        return count

    def _parsed(
        self,
        fn: str,
        parser: Callable[[Any], R],
        raw: Any,
        caller: Caller,
        started: float,
        now: datetime,
    ) -> R:
        """The validated request, or a recorded ``invalid-argument`` naming the field."""
        try:
            return parser(raw)
        except InvalidArgument as exc:
            raise self._refuse(
                fn, caller, started, now, Outcome.INVALID, exc, reason=f"invalid {exc.field}"
            ) from None

    def _load(self, uid: str, cv_id: str, window: Window, now: datetime) -> _Loaded:
        """Cached values where fresh, everything else in one batched read."""
        previous_path = window.previous_path
        cfg = self._config_fresh(now)
        user_key = f"users/{uid}"
        cv_key = f"cvs/{cv_id}"
        user = self._users.get(uid, now)
        owner = self._owners.get(cv_id, now)
        previous = self._closed.get(previous_path, now)
        need = []
        if cfg is None:
            need.append(CONFIG_PATH)
        if user is None:
            need.append(user_key)
        if owner is None:
            need.append(cv_key)
        if previous is None:
            need.append(previous_path)
        got = self.store.get_many(need) if need else {}
        if cfg is None:
            cfg = self._accept_config(got.get(CONFIG_PATH), now)
        user_fresh = user_key in got
        if user_fresh:
            user = got[user_key] or {}
            self._users.put(uid, user, now)
        owner_fresh = cv_key in got
        if owner_fresh:
            cv = got[cv_key]
            owner = cv.get("userId") if cv else None
            if isinstance(owner, str):
                self._owners.put(cv_id, owner, now)
        if previous is None:
            previous = self._closed_count(window, got.get(previous_path), now, CLOSED_WINDOW_SETTLE)
        return _Loaded(
            cfg, user, user_fresh, owner if isinstance(owner, str) else None, owner_fresh, previous
        )

    def _reread_user(self, uid: str, now: datetime) -> Mapping[str, Any]:
        user = self.store.get_many([f"users/{uid}"])[f"users/{uid}"] or {}
        self._users.put(uid, user, now)
        return user

    def _limit(self, tier: Tier) -> int:
        return self.settings.premium_hourly if tier is Tier.PREMIUM else self.settings.free_hourly

    def _decide(
        self, cfg: RolloutConfig, uid: str, user: Mapping[str, Any] | None, mode: str, now: datetime
    ) -> Decision:
        premium = is_premium(user, now, self.settings.grace_days)
        return decide(cfg, uid, premium, rollout_groups(user), mode)

    def enrich(self, caller: Caller, raw: Any) -> dict[str, Any]:
        """``enrichCVWithExternalData`` (contract 2.1)."""
        started = time.perf_counter()
        now = self.now()
        uid = self._authenticated(ENRICH, caller, started, now)
        req = self._parsed(ENRICH, parse_enrich, raw, caller, started, now)
        request_id = uuid.uuid4().hex
        window = self.limiter.window(uid, now)
        try:
            loaded = self._load(uid, req.cv_id, window, now)
            cfg = loaded.cfg
            owner = loaded.owner
            if owner != uid and not loaded.owner_fresh:
                cv = self.store.get_many([f"cvs/{req.cv_id}"])[f"cvs/{req.cv_id}"]
                owner = cv.get("userId") if cv else None
            if owner != uid:
                raise self._refuse(
                    ENRICH,
                    caller,
                    started,
                    now,
                    Outcome.NOT_FOUND,
                    NotFound("CV not found."),
                    cfg,
                    cv_id=req.cv_id,
                    request_id=request_id,
                    reason="CV missing or not the caller's",
                )
            user = loaded.user
            decision = self._decide(cfg, uid, user, req.mode, now)
            if decision.denied and not loaded.user_fresh:
                # Never refuse on a cached "free": the user may have just upgraded.
                user = self._reread_user(uid, now)
                decision = self._decide(cfg, uid, user, req.mode, now)
                loaded.user_fresh = True
            if decision.denied:
                details: dict[str, Any] = {
                    "reason": "premium_required",
                    "upgradeUrl": self.settings.upgrade_url,
                    "message": cfg.message_set(("gate",))["gate"],
                }
                raise self._refuse(
                    ENRICH,
                    caller,
                    started,
                    now,
                    Outcome.DENIED,
                    PermissionDenied("Full enrichment needs Premium.", details),
                    cfg,
                    tier=decision.tier.value,
                    gated=True,
                    cv_id=req.cv_id,
                    request_id=request_id,
                    reason="premium_required",
                )
            rate: RateDecision | None = None
            if cfg.components.rateLimiting:
                rate, _ = self.limiter.admit(
                    uid, self._limit(decision.limit_tier), loaded.previous, now
                )
                if not rate.allowed and decision.limit_tier is Tier.FREE and not loaded.user_fresh:
                    user = self._reread_user(uid, now)
                    fresh = self._decide(cfg, uid, user, req.mode, now)
                    if fresh.limit_tier is Tier.PREMIUM:
                        decision = fresh
                        rate, _ = self.limiter.admit(
                            uid, self._limit(Tier.PREMIUM), loaded.previous, now
                        )
                if not rate.allowed:
                    details = {
                        "tier": decision.limit_tier.value,
                        "limit": rate.limit,
                        "remaining": 0,
                        "resetAt": iso(rate.reset_at),
                        "retryAfterSeconds": rate.retry_after_seconds(now),
                    }
                    raise self._refuse(
                        ENRICH,
                        caller,
                        started,
                        now,
                        Outcome.RATE_LIMITED,
                        ResourceExhausted("Hourly enrichment limit reached.", details),
                        cfg,
                        tier=decision.tier.value,
                        gated=decision.gated,
                        cv_id=req.cv_id,
                        request_id=request_id,
                        reason=f"limit {rate.limit}/h",
                    )
        except StoreError as exc:
            log("ERROR", "store unavailable on the hot path", error=str(exc), uid=uid)
            raise self._store_down(ENRICH, caller, started, now) from None
        return self._run(caller, req, decision, rate, cfg, request_id, started, now)

    def _run(
        self,
        caller: Caller,
        req: EnrichRequest,
        decision: Decision,
        rate: RateDecision | None,
        cfg: RolloutConfig,
        request_id: str,
        started: float,
        now: datetime,
    ) -> dict[str, Any]:
        from enrichment.engine import EnrichmentInput

        inp = EnrichmentInput(
            sources=req.sources,
            github=req.github,
            website=req.website,
            linkedin_export=req.linkedin_export,
            name=req.name,
            force_refresh=req.force_refresh,
            timeout_ms=req.timeout_ms,
        )
        try:
            result = self.engine.enrich(inp)
        except Exception as exc:  # noqa: BLE001 - any engine crash is an internal error
            log("ERROR", "enrichment engine crashed", error=repr(exc), requestId=request_id)
            err = GatingError("Enrichment failed. Please retry later.")
            raise self._refuse(
                ENRICH,
                caller,
                started,
                now,
                Outcome.INTERNAL,
                err,
                cfg,
                tier=decision.tier.value,
                access=decision.access.value,
                gated=decision.gated,
                cv_id=req.cv_id,
                request_id=request_id,
                reason="engine error",
                service_error=True,
            ) from None
        data = dict(result.data)
        if decision.access is Access.PREVIEW:
            data = trim_preview(data)
            messages = cfg.message_set(("preview", "gate", "upgrade"))
        elif decision.tier is Tier.PREMIUM:
            messages = cfg.message_set(("welcome", "guidance", "support"))
        else:
            messages = {}
        usage = {
            "tier": decision.limit_tier.value,
            "limit": rate.limit if rate else None,
            "remaining": rate.remaining if rate else None,
            "resetAt": iso(rate.reset_at) if rate else None,
        }
        duration_ms = (time.perf_counter() - started) * 1000
        answer = {
            "requestId": request_id,
            "status": result.status,
            "access": decision.access.value,
            "enrichedData": data,
            "sources": [s.to_dict() for s in result.sources],
            "usage": usage,
            "messages": messages,
            "durationMs": round(duration_ms),
        }
        outcome = {"success": Outcome.SUCCESS, "partial": Outcome.PARTIAL}.get(
            result.status, Outcome.FAILED
        )
        stored = Write(
            f"cvs/{req.cv_id}/externalData/latest",
            {
                "requestId": request_id,
                "userId": caller.uid,
                "at": now,
                "access": decision.access.value,
                "status": result.status,
                # One JSON string, not a map: a map is encoded and indexed value by value (most
                # of a cache hit's time, and a user with hundreds of repositories would pass
                # Firestore's 40,000 index entries per document).
                "enrichedDataJson": json.dumps(data, separators=(",", ":"), default=str),
                "sources": answer["sources"],
            },
            merge=False,
        )
        base = self._base(ENRICH, caller, started, now)
        self._record(
            CallRecord(
                outcome=outcome,
                tier=decision.tier.value,
                access=decision.access.value,
                gated=decision.gated,
                service_error=bool(result.service_failure),
                reason=decision.reason.value,
                cv_id=req.cv_id,
                request_id=request_id,
                sources=[
                    SourceOutcome(
                        s.source,
                        s.status,
                        float(s.duration_ms),
                        bool(s.cached),
                        s.error.code if s.error else None,
                    )
                    for s in result.sources
                ],
                extra_writes=(stored,),
                **base,
            ),
            cfg,
        )
        log(
            "INFO",
            "enrichment served",
            requestId=request_id,
            uid=caller.uid,
            access=decision.access.value,
            status=result.status,
            durationMs=round(duration_ms, 1),
        )
        return answer

    # -- funnel events ----------------------------------------------------------------------

    def track(self, caller: Caller, raw: Any) -> dict[str, Any]:
        """``trackExternalDataUsage`` (contract 2.2)."""
        started = time.perf_counter()
        now = self.now()
        uid = self._authenticated(TRACK, caller, started, now)
        req = self._parsed(TRACK, parse_track, raw, caller, started, now)
        try:
            cfg = self.config()
            window = self.track_limiter.window(uid, now)
            previous = self._closed.get(window.previous_path, now)
            if previous is None:
                doc = self.store.get_many([window.previous_path])[window.previous_path]
                # Funnel events need no settling time: one extra event at a boundary is harmless.
                previous = self._closed_count(window, doc, now, timedelta(0))
            rate, _ = self.track_limiter.admit(uid, self.settings.track_per_minute, previous, now)
        except (StoreError, Unavailable):
            raise self._store_down(TRACK, caller, started, now) from None
        if not rate.allowed:
            details = {
                "tier": "events",
                "limit": rate.limit,
                "remaining": 0,
                "resetAt": iso(rate.reset_at),
                "retryAfterSeconds": rate.retry_after_seconds(now),
            }
            raise self._refuse(
                TRACK,
                caller,
                started,
                now,
                Outcome.RATE_LIMITED,
                ResourceExhausted("Too many events; slow down.", details),
                cfg,
                reason=f"limit {rate.limit}/min",
            )
        event_id = uuid.uuid4().hex
        recorded = self.settings.analytics_enabled and cfg.components.usageTracking
        base = self._base(TRACK, caller, started, now)
        self._record(
            CallRecord(
                outcome=Outcome.SUCCESS,
                event=req.event,
                cv_id=req.cv_id,
                request_id=event_id,
                reason=req.event,
                **base,
            ),
            cfg,
        )
        return {"eventId": event_id, "recorded": recorded}

    # -- per-user stats ---------------------------------------------------------------------

    def user_stats(self, caller: Caller, raw: Any) -> dict[str, Any]:
        """``getUserExternalDataUsageStats`` (contract 2.3)."""
        started = time.perf_counter()
        now = self.now()
        uid = self._authenticated(STATS, caller, started, now)
        req = self._parsed(STATS, parse_stats, raw, caller, started, now)
        target = req.user_id or uid
        if target != uid and not caller.admin:
            raise self._refuse(
                STATS,
                caller,
                started,
                now,
                Outcome.DENIED,
                PermissionDenied("You can only see your own usage."),
                reason="foreign stats",
            )
        from analytics.stats import user_stats

        try:
            cfg = self.config()
            answer = user_stats(self, cfg, target, now)
        except (StoreError, Unavailable):
            raise self._store_down(STATS, caller, started, now) from None
        self._record(
            CallRecord(outcome=Outcome.SUCCESS, **self._base(STATS, caller, started, now)), cfg
        )
        return answer

    # -- admin analytics --------------------------------------------------------------------

    def analytics(self, caller: Caller, raw: Any) -> dict[str, Any]:
        """``getExternalDataAnalytics`` (contract 2.4): admins only."""
        started = time.perf_counter()
        now = self.now()
        self._authenticated(ANALYTICS, caller, started, now)
        if not caller.admin:
            raise self._refuse(
                ANALYTICS,
                caller,
                started,
                now,
                Outcome.DENIED,
                PermissionDenied("Analytics are for admins only."),
                reason="not an admin",
            )
        req = self._parsed(ANALYTICS, parse_analytics, raw, caller, started, now)
        from analytics.admin import build_analytics

        try:
            answer = build_analytics(self.store, req)
        except (StoreError, Unavailable):
            raise self._store_down(ANALYTICS, caller, started, now) from None
        self._record(
            CallRecord(outcome=Outcome.SUCCESS, **self._base(ANALYTICS, caller, started, now))
        )
        return answer

    # -- conversions (Firestore trigger on users/{uid}) -------------------------------------

    def subscription_changed(
        self,
        uid: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        event_id: str | None = None,
    ) -> bool:
        """Record a conversion when ``subscription`` turns premium. Returns True if recorded.

        A renewal or a recovery from ``past_due`` is not a conversion: only a user who was not
        a paying subscriber before (free tier, canceled, or no subscription) converts. The
        trigger may be delivered more than once: ``event_id`` names the conversion document,
        so a redelivery finds it and records nothing.
        """
        now = self.now()
        if not self.settings.conversion_tracking:
            return False
        if was_paying(before) or not is_premium(after, now, self.settings.grace_days):
            return False
        conv_id = (
            hashlib.sha256(event_id.encode()).hexdigest()[:32] if event_id else uuid.uuid4().hex
        )
        conv_path = f"{USAGE}/{uid}/conversions/{conv_id}"
        cfg = self.config()
        got = self.store.get_many([f"{USAGE}/{uid}", conv_path])
        if got[conv_path] is not None:
            log("INFO", "conversion already recorded (trigger redelivered)", uid=uid)
            return False
        usage = got[f"{USAGE}/{uid}"] or {}
        funnel_at = usage.get("lastFunnelAt")
        preceded = isinstance(funnel_at, datetime) and now - funnel_at <= timedelta(days=7)
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
            Write(conv_path, conv, merge=False),
            Write(f"{USAGE}/{uid}", {"uid": uid, "convertedAt": now}),
            *self.recorder.aggregate_writes(now, counters),
        ]
        self.store.commit(writes)
        log("INFO", "conversion recorded", uid=uid, precededByFunnel=preceded)
        return True

    def record_crash(self, fn: str, caller: Caller, started: float) -> None:
        """Record an unexpected failure as an ``internal`` answer (an error of the service), so
        error rates and the automatic rollback see it."""
        now = self.now()
        self._record(
            CallRecord(
                outcome=Outcome.INTERNAL,
                reason="unexpected error",
                service_error=True,
                **self._base(fn, caller, started, now),
            )
        )


def was_paying(user_doc: Mapping[str, Any] | None) -> bool:
    """Whether the doc shows a premium subscription that had not been canceled (active,
    trialing, past_due or lifetime), whatever its dates: moving from that to premium is a
    renewal or a recovery, not a conversion."""
    sub = (user_doc or {}).get("subscription")
    if not isinstance(sub, Mapping) or sub.get("tier") != "premium":
        return False
    return sub.get("lifetime") is True or sub.get("status") in ("active", "trialing", "past_due")


def trim_preview(data: Mapping[str, Any], *, propagate: bool = False) -> dict[str, Any]:
    """At most ``PREVIEW_ITEMS`` items per list; ``locked: true`` on every section trimmed.

    A source section (``github``, ...) is also locked when something nested in it was trimmed
    (``propagate``); ``enrichedData`` itself only when its own lists (skills, projects) were.
    """
    out: dict[str, Any] = {}
    locked = False
    for key, value in data.items():
        if isinstance(value, list):
            locked = locked or len(value) > PREVIEW_ITEMS
            out[key] = [
                trim_preview(item, propagate=True) if isinstance(item, Mapping) else item
                for item in value[:PREVIEW_ITEMS]
            ]
        elif isinstance(value, Mapping):
            inner = trim_preview(value, propagate=True)
            locked = locked or (propagate and bool(inner.get("locked")))
            out[key] = inner
        else:
            out[key] = value
    if locked:
        out["locked"] = True
    return out

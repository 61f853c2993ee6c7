"""What is recorded for each call: usage, audit, funnel and sharded aggregates (contract §5).

``Recorder.writes`` turns one ``CallRecord`` into the list of document writes that the use-case
wrapper commits in a single batch. A call's aggregate counters go to one shard of its minute's
raw aggregate, the shards taken in turn from a random start (so every shard of a busy minute
takes about the same share); ``analytics.rollup`` folds complete minutes into the minute, hour
and day documents that readers use. Paths and layouts: ``stores.schema``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from common.histogram import bucket_of
from common.settings import Settings
from common.ttlcache import TTLCache
from common.vocab import (
    DENIALS,
    ENRICHED,
    Access,
    Fn,
    Outcome,
    SourceStatus,
    Tier,
    failed_upstream,
)
from stores.base import Inc, Write
from stores.schema import (
    RAW,
    RAW_TTL,
    audit_path,
    floor_to,
    raw_shard_path,
    usage_event_path,
    usage_path,
)

EXPOSURE_WINDOW = timedelta(minutes=30)
"""How long a user's exposure counts once in the cohorts (the evaluator's guard window)."""

_NAMED = {
    Outcome.RATE_LIMITED: "rateLimited",
    Outcome.UNAUTHENTICATED: "unauthenticated",
    Outcome.INVALID: "invalidRequests",
    Outcome.NOT_FOUND: "notFound",
    Outcome.UNAVAILABLE: "unavailable",
}

AUDIT_EVENT = {
    Outcome.SUCCESS: "access_granted",
    Outcome.PARTIAL: "access_granted",
    Outcome.FAILED: "access_granted",
    Outcome.DENIED: "unauthorized_access",
    Outcome.NOT_FOUND: "unauthorized_access",
    Outcome.RATE_LIMITED: "rate_limit_exceeded",
    Outcome.UNAUTHENTICATED: "unauthenticated",
    Outcome.INVALID: "invalid_request",
    Outcome.UNAVAILABLE: "service_unavailable",
}


@dataclass(frozen=True)
class SourceOutcome:
    """One source's part in an enrichment."""

    source: str
    status: SourceStatus
    duration_ms: float
    cached: bool
    """Answered from the cache without asking the source (no try: ``cacheHits``); a copy
    revalidated by a 304 asked it, and is not cached here."""
    error_code: str | None = None


@dataclass(frozen=True)
class CallRecord:
    """Everything recorded about one call (built by ``usecases.hooks`` from the call's context
    and the facts its use case learned)."""

    fn: Fn
    at: datetime
    outcome: Outcome
    duration_ms: float
    uid: str | None = None
    tier: Tier | None = None
    access: Access | None = None
    """``full`` or ``preview`` when enrichment ran."""
    gated: bool | None = None
    """Whether the premium gate applied (the rollout cohort); ``None`` when not decided."""
    gate_shown: bool = False
    """A free user asked for full inside the gate and was refused with the upgrade gate."""
    service_error: bool = False
    """A failure of the service (contract 2.4), as opposed to a denial or the user's input."""
    upstream_failure: bool = False
    """Every tried source failed ``upstream``/``timeout``: counted apart, never as an error."""
    would: str | None = None
    """Shadow mode: ``refuse`` or ``preview``, what the gate would have done."""
    reason: str = ""
    cv_id: str | None = None
    request_id: str | None = None
    sources: Sequence[SourceOutcome] = ()
    ip: str | None = None
    user_agent: str | None = None
    event: str | None = None
    """For ``trackExternalDataUsage``: the client's funnel event."""
    extra_writes: Sequence[Write] = field(default_factory=tuple)
    """Writes that must land in the same batch."""


@dataclass(frozen=True)
class Switches:
    """Which records the rollout config's components allow right now."""

    usage_tracking: bool = True
    security_audit: bool = True


class Recorder:
    """Builds the batch of writes for a call record."""

    def __init__(self, settings: Settings, *, rng: Callable[[int], int] | None = None) -> None:
        self.settings = settings
        pick = rng or (lambda n: random.randrange(n))
        # Shards in turn from a random start: each instance spreads its writes evenly, and
        # instances start apart (random choice made the busiest shard take 1.22x the mean).
        self._turn = itertools.count(pick(settings.metric_shards))
        self._exposed: TTLCache[bool] = TTLCache(EXPOSURE_WINDOW, max_items=100_000)

    def hash(self, value: str | None) -> str | None:
        """Keyed hash (HMAC-SHA256 under ``EXTERNAL_DATA_HASH_SALT``) for IPs, user agents and
        the uids of erased users: never stored raw, not reversible without the key."""
        if not value:
            return None
        key = self.settings.hash_salt.encode()
        return hmac.new(key, value.encode("utf-8", "replace"), hashlib.sha256).hexdigest()[:32]

    def writes(self, rec: CallRecord, switches: Switches) -> list[Write]:
        """All writes for ``rec`` under the current config's component switches."""
        out: list[Write] = list(rec.extra_writes)
        # Counted in the minute the answer was given (contract 6 judges answers per minute), so
        # a record lands at most a commit's deadline after its minute ends (the roll-up's settle).
        answered = rec.at + timedelta(milliseconds=rec.duration_ms)
        out.extend(self.aggregate_writes(answered, self._counters(rec), self._minute_only(rec)))
        if self.settings.analytics_enabled and switches.usage_tracking and rec.uid:
            out.extend(self._usage(rec))
        elif self.settings.conversion_tracking and rec.uid and _event_type(rec) in _FUNNEL:
            # Usage records off, conversions on: a conversion still needs to know whether a
            # preview or gate preceded it (the one field of the usage document it reads).
            out.append(Write(usage_path(rec.uid), {"uid": rec.uid, "lastFunnelAt": rec.at}))
        if self.settings.audit_enabled and switches.security_audit:
            event = AUDIT_EVENT.get(rec.outcome)
            if rec.fn is not Fn.ENRICH and rec.outcome is Outcome.SUCCESS:
                event = None  # only access to the gated feature is audited as granted
            if event:
                out.append(self._audit(rec, event))
        return out

    # -- aggregates -------------------------------------------------------------------------

    def aggregate_writes(
        self,
        at: datetime,
        counters: Mapping[str, Any],
        minute_only: Mapping[str, Any] | None = None,
    ) -> list[Write]:
        """The counters into the next shard of ``at``'s raw minute aggregate. ``minute_only``
        counters (keyed per user) are marked so the roll-up keeps them out of hours and days."""
        shard = next(self._turn) % self.settings.metric_shards
        minute = floor_to(at, "m")
        doc: dict[str, Any] = {
            "granularity": RAW,
            "bucketStart": minute,
            "shard": shard,
            "expireAt": minute + RAW_TTL,
            **counters,
            **(minute_only or {}),
        }
        return [Write(raw_shard_path(minute, shard), doc)]

    def _minute_only(self, rec: CallRecord) -> dict[str, Any]:
        """Who failed, per minute (contract section 6: a rollback, and a source's breaker,
        need failures from at least five distinct users, so no single user moves them):
        ``failedUsers.{keyed hash of the uid}`` for a failure of the service and
        ``srcFailedUsers.{source}.{keyed hash}`` for each source whose try failed upstream
        (answers from the cache and skipped sources are no tries), minute buckets only."""
        if rec.fn is not Fn.ENRICH:
            return {}
        failing = [
            s.source
            for s in rec.sources
            if s.status is not SourceStatus.SKIPPED
            and not s.cached
            and failed_upstream(s.status, s.error_code)
        ]
        service = _service_failure(rec)
        if not service and not failing:
            return {}
        who = self.hash(rec.uid) if rec.uid else self.hash(f"ip:{rec.ip}" if rec.ip else "anon")
        key = str(who)[:16]
        out: dict[str, Any] = {}
        if service:
            out["failedUsers"] = {key: Inc(1)}
        if failing:
            out["srcFailedUsers"] = {source: {key: Inc(1)} for source in failing}
        return out

    def _counters(self, rec: CallRecord) -> dict[str, Any]:
        """Counters for one call. ``c`` holds the enrichment product's figures (contract 2.4),
        ``sec`` the security figures of every function, ``fn`` per-function counts."""
        o = rec.outcome
        c = _product_counters(rec)
        sec = _security_counters(rec)
        fn_error = _service_failure(rec)
        # Latency is the time of answers that did the work: fast refusals (gate, limits, bad
        # input) would pull p95 down and hide a slow enrichment, above all in the gated cohort;
        # an unavailable answer (the store down before the work) would push it up, and a store
        # outage would look like a slow gated cohort to the gradual rollback.
        timed = o not in DENIALS and o is not Outcome.UNAVAILABLE
        lat = {str(bucket_of(rec.duration_ms)): Inc(1)}
        fn_counts: dict[str, Any] = {"requests": Inc(1)}
        if timed:
            fn_counts["lat"] = lat
        if fn_error:
            fn_counts["errors"] = Inc(1)
        if o in DENIALS:
            fn_counts["denied"] = Inc(1)
        doc: dict[str, Any] = {"fn": {rec.fn: fn_counts}}
        if c:
            doc["c"] = c
        if sec:
            doc["sec"] = sec
        if rec.sources:
            src = _source_counters(rec.sources)
            if src:
                doc["src"] = src
        if rec.gated is not None and rec.fn is Fn.ENRICH:
            # The cohorts' latency is the gradual rollback's signal, which no third-party outage
            # may move (contract 6): a call that waited on a source failing upstream or timing
            # out is counted but not timed there (the function's own histogram still times it).
            waited = any(failed_upstream(s.status, s.error_code) for s in rec.sources)
            side = _cohort_counters(c, lat if timed and not waited else None, fn_error)
            self._once_per_user(rec, side)
            doc["cohort"] = {"in" if rec.gated else "out": side}
        return doc

    def _once_per_user(self, rec: CallRecord, side: dict[str, Any]) -> None:
        """A user's exposures (previews, gates) count in the cohorts once per
        ``EXPOSURE_WINDOW`` on this instance: the cohorts' conversion is the gradual rollback's
        signal, which no single user may move (contract 6), and a free user may ask for full
        and be refused as often as they like (refusals come before the rate limit). The
        product's own counters (``c.previews``, ``c.gateShown``) still count every one."""
        if rec.uid is None or not ("previews" in side or "gateShown" in side):
            return
        if self._exposed.get(rec.uid, rec.at):
            side.pop("previews", None)
            side.pop("gateShown", None)
        else:
            self._exposed.put(rec.uid, True, rec.at)

    # -- usage and funnel -------------------------------------------------------------------

    def _usage(self, rec: CallRecord) -> list[Write]:
        if rec.uid is None:
            raise ValueError("usage records need the caller's uid")
        expire = rec.at + timedelta(days=self.settings.event_ttl_days)
        kind = _event_type(rec)
        event = _usage_event(rec, rec.uid, kind, expire)
        out = [Write(usage_event_path(rec.uid, uuid.uuid4().hex), event, merge=False)]
        stats: dict[str, Any] = {"uid": rec.uid}
        if rec.fn is Fn.ENRICH and rec.outcome in _USER_COUNTED:
            stats.update(_user_enrich_stats(rec))
        if kind in _FUNNEL:
            # Only what the server served or refused: client events never decide conversions.
            stats["lastFunnelAt"] = rec.at
        out.append(Write(usage_path(rec.uid), stats))
        return out

    def _audit(self, rec: CallRecord, event: str) -> Write:
        doc: dict[str, Any] = {
            "type": event,
            "at": rec.at,
            "fn": rec.fn,
            "reason": rec.reason or rec.outcome.value,
            "expireAt": rec.at + timedelta(days=self.settings.event_ttl_days),
        }
        if rec.uid:
            doc["uid"] = rec.uid
        if rec.ip:
            doc["ipHash"] = self.hash(rec.ip)
        if rec.user_agent:
            doc["uaHash"] = self.hash(rec.user_agent)
        if rec.request_id:
            doc["requestId"] = rec.request_id
        return Write(audit_path(uuid.uuid4().hex), doc, merge=False)


_FUNNEL = ("preview", "gate")
"""Usage event types that make a later upgrade a funnel conversion: what the server served or
refused, never client events."""


def _service_failure(rec: CallRecord) -> bool:
    """A failure of the service (contract 2.4's ``errorRate``): an internal or unavailable
    answer, or a deadline of ours; never a denial, the user's input, or an upstream outage."""
    return rec.service_error or rec.outcome in (Outcome.INTERNAL, Outcome.UNAVAILABLE)


def _event_type(rec: CallRecord) -> str:
    if rec.event:
        return rec.event
    if rec.outcome is Outcome.DENIED and rec.gate_shown:
        return "gate"
    if rec.outcome in (Outcome.SUCCESS, Outcome.PARTIAL, Outcome.FAILED) and rec.access:
        return rec.access.value  # "preview" or "full"
    return rec.outcome.value


def _product_counters(rec: CallRecord) -> dict[str, Any]:
    """The ``c`` counters (contract 2.4's product figures): the enrichment's own, plus the
    funnel events that ``trackExternalDataUsage`` reports."""
    c = _enrich_counters(rec) if rec.fn is Fn.ENRICH else {}
    if rec.event:
        c["trackedEvents"] = Inc(1)
        if rec.event == "upgrade_clicked":
            c["upgradeClicks"] = Inc(1)
    return c


def _enrich_counters(rec: CallRecord) -> dict[str, Any]:
    """The product counters of one enrichment call, each defined in README.md ("Analytics
    figures"); apart because only ``enrichCVWithExternalData`` feeds them."""
    o = rec.outcome
    c: dict[str, Any] = {"requests": Inc(1)}
    if o in (Outcome.SUCCESS, Outcome.PARTIAL):
        c["successful"] = Inc(1)
    if o in (Outcome.FAILED, Outcome.INTERNAL, Outcome.UNAVAILABLE):
        c["failed"] = Inc(1)
    if _service_failure(rec):
        c["errors"] = Inc(1)
    if rec.upstream_failure:
        c["upstreamFailures"] = Inc(1)
    if rec.would == "refuse":
        c["wouldRefuse"] = Inc(1)
    elif rec.would == "preview":
        c["wouldPreview"] = Inc(1)
    if o in DENIALS:
        c["denied"] = Inc(1)
    if rec.tier is Tier.PREMIUM:
        c["premiumRequests"] = Inc(1)
    elif rec.tier is Tier.FREE:
        c["freeRequests"] = Inc(1)
    if o in ENRICHED and rec.access is Access.PREVIEW:
        c["previews"] = Inc(1)
    if o in ENRICHED and rec.access is Access.FULL:
        c["fullRequests"] = Inc(1)
        if rec.gated and rec.tier is not Tier.PREMIUM:
            # Must stay 0: a full answer to a non-premium user inside the gate.
            c["unauthorizedFull"] = Inc(1)
    if o is Outcome.DENIED and rec.gate_shown:
        c["gateShown"] = Inc(1)
    if o in (Outcome.DENIED, Outcome.NOT_FOUND):
        c["unauthorizedAttempts"] = Inc(1)
    if o in _NAMED:
        c[_NAMED[o]] = Inc(1)
    hits = sum(1 for s in rec.sources if s.cached)
    if hits:
        c["cacheHits"] = Inc(hits)
    return c


def _security_counters(rec: CallRecord) -> dict[str, Any]:
    """The ``sec`` counters, kept for every function (not only enrichment) because abuse can
    come through any callable."""
    o = rec.outcome
    sec: dict[str, Any] = {}
    if o is Outcome.DENIED or (o is Outcome.NOT_FOUND and rec.fn is Fn.ENRICH):
        sec["unauthorizedAttempts"] = Inc(1)
    if o is Outcome.RATE_LIMITED:
        sec["rateLimitViolations"] = Inc(1)
    if o is Outcome.UNAUTHENTICATED:
        sec["unauthenticated"] = Inc(1)
    return sec


def _source_counters(sources: Sequence[SourceOutcome]) -> dict[str, Any]:
    """The ``src`` counters per source that ran (skipped sources did no work to count)."""
    src: dict[str, Any] = {}
    for s in sources:
        if s.status is SourceStatus.SKIPPED:
            continue
        entry: dict[str, Any] = {
            "requests": Inc(1),
            "lat": {str(bucket_of(s.duration_ms)): Inc(1)},
        }
        if s.status is SourceStatus.SUCCESS:
            entry["successful"] = Inc(1)
        else:
            entry["failed"] = Inc(1)
        if s.status is SourceStatus.TIMEOUT:
            entry["timeouts"] = Inc(1)
        if failed_upstream(s.status, s.error_code):
            entry["upstreamFailures"] = Inc(1)
        if s.cached:
            entry["cacheHits"] = Inc(1)
        src[s.source] = entry
    return src


def _cohort_counters(
    c: Mapping[str, Any], lat: Mapping[str, Any] | None, fn_error: bool
) -> dict[str, Any]:
    """One rollout cohort's side (``in`` or ``out`` of the gate): the few figures the rollout
    evaluator compares between the two sides. ``lat`` is ``None`` for untimed refusals."""
    side: dict[str, Any] = {"requests": Inc(1)}
    if lat is not None:
        side["lat"] = dict(lat)
    if fn_error:
        side["errors"] = Inc(1)
    if "previews" in c:
        side["previews"] = Inc(1)
    if "gateShown" in c:
        side["gateShown"] = Inc(1)
    return side


_USER_COUNTED = (
    Outcome.SUCCESS,
    Outcome.PARTIAL,
    Outcome.FAILED,
    Outcome.INTERNAL,
    Outcome.DENIED,
    Outcome.RATE_LIMITED,
)
"""Enrichment outcomes that count in a user's own usage totals."""
_ANSWERED = (Outcome.SUCCESS, Outcome.PARTIAL, Outcome.FAILED)
"""Outcomes where the enrichment ran and answered (with data or with source failures)."""


def _usage_event(rec: CallRecord, uid: str, kind: str, expire: datetime) -> dict[str, Any]:
    """The user's usage event document for this call (one per call, expiring)."""
    event: dict[str, Any] = {
        "uid": uid,
        "type": kind,
        "at": rec.at,
        "fn": rec.fn,
        "outcome": rec.outcome.value,
        "tier": rec.tier.value if rec.tier else None,
        "access": rec.access.value if rec.access else None,
        "durationMs": round(rec.duration_ms, 1),
        "expireAt": expire,
    }
    if rec.cv_id:
        event["cvId"] = rec.cv_id
    if rec.request_id:
        event["requestId"] = rec.request_id
    if rec.sources:
        event["sources"] = [
            {"source": s.source, "status": s.status, "cached": s.cached} for s in rec.sources
        ]
    return event


def _user_enrich_stats(rec: CallRecord) -> dict[str, Any]:
    """The increments of the user's usage document for one counted enrichment call; apart
    from the event so each document's layout reads on its own."""
    totals: dict[str, Any] = {"requests": Inc(1)}
    if rec.outcome in (Outcome.SUCCESS, Outcome.PARTIAL):
        totals["successful"] = Inc(1)
    if rec.outcome in (Outcome.FAILED, Outcome.INTERNAL):
        totals["failed"] = Inc(1)
    if rec.outcome is Outcome.RATE_LIMITED:
        totals["rateLimited"] = Inc(1)
    if rec.access is Access.PREVIEW and rec.outcome in _ANSWERED:
        totals["previews"] = Inc(1)
    if rec.access is Access.FULL and rec.outcome in _ANSWERED:
        totals["full"] = Inc(1)
    stats: dict[str, Any] = {"totals": totals}
    by_source: dict[str, Any] = {}
    for s in rec.sources:
        if s.status is SourceStatus.SKIPPED:
            continue
        by_source[s.source] = {
            "requests": Inc(1),
            ("successful" if s.status is SourceStatus.SUCCESS else "failed"): Inc(1),
        }
    if by_source:
        stats["bySource"] = by_source
    if rec.outcome in _ANSWERED:
        stats["durationMsSum"] = Inc(round(rec.duration_ms, 1))
        stats["durationCount"] = Inc(1)
        stats["lastUsedAt"] = rec.at
    return stats

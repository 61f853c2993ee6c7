"""What is recorded for each call: usage, audit, funnel and sharded aggregates (contract §5).

``Recorder.writes`` turns one ``CallRecord`` into the list of document writes that the service
commits in a single batch. Aggregates go to a random shard of the minute, hour and day buckets,
so no single document takes every increment.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from analytics.histogram import bucket_of
from gating.rollout import RolloutConfig
from gating.settings import Settings
from stores.base import Inc, Write

METRICS = "external_data_metrics"
AUDIT = "external_data_security_audit"
USAGE = "external_data_usage"

GRANULARITIES: dict[str, tuple[str, timedelta]] = {
    # prefix: (strftime format of the bucket key, how long the bucket documents live)
    "m": ("%Y-%m-%dT%H:%M", timedelta(days=3)),
    "h": ("%Y-%m-%dT%H", timedelta(days=120)),
    "d": ("%Y-%m-%d", timedelta(days=800)),
}


class Outcome(StrEnum):
    """How a call ended."""

    SUCCESS = "success"
    PARTIAL = "partial"
    FAILED = "failed"
    """Enrichment ran and no source succeeded."""
    DENIED = "denied"
    """permission-denied (premium required, or not an admin)."""
    RATE_LIMITED = "rate_limited"
    UNAUTHENTICATED = "unauthenticated"
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


_ENRICHED = (Outcome.SUCCESS, Outcome.PARTIAL, Outcome.FAILED)
_DENIALS = (
    Outcome.DENIED,
    Outcome.RATE_LIMITED,
    Outcome.UNAUTHENTICATED,
    Outcome.INVALID,
    Outcome.NOT_FOUND,
)
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
    status: str
    duration_ms: float
    cached: bool
    error_code: str | None = None


@dataclass(frozen=True)
class CallRecord:
    """Everything recorded about one call."""

    fn: str
    at: datetime
    outcome: Outcome
    duration_ms: float
    uid: str | None = None
    tier: str | None = None
    access: str | None = None
    """"full" or "preview" when enrichment ran."""
    gated: bool | None = None
    """Whether the premium gate applied (the rollout cohort); ``None`` when not decided."""
    service_error: bool = False
    """A failure of the service (contract 2.4), as opposed to a denial or the user's input."""
    reason: str = ""
    cv_id: str | None = None
    request_id: str | None = None
    sources: Sequence[SourceOutcome] = ()
    ip: str | None = None
    user_agent: str | None = None
    event: str | None = None
    """For ``trackExternalDataUsage``: the client's funnel event."""
    extra_writes: Sequence[Write] = field(default_factory=tuple)
    """Writes that must land in the same batch (e.g. the enrichment result)."""


class Recorder:
    """Builds the batch of writes for a call record."""

    def __init__(self, settings: Settings, *, rng: Callable[[int], int] | None = None) -> None:
        self.settings = settings
        self._rng = rng or (lambda n: random.randrange(n))

    def hash(self, value: str | None) -> str | None:
        """Salted hash for IPs and user agents (never stored raw)."""
        if not value:
            return None
        return hashlib.sha256(f"{self.settings.hash_salt}:{value}".encode()).hexdigest()[:32]

    def writes(self, rec: CallRecord, cfg: RolloutConfig) -> list[Write]:
        """All writes for ``rec`` under the current config's component switches."""
        out: list[Write] = list(rec.extra_writes)
        out.extend(self.aggregate_writes(rec.at, self._counters(rec)))
        if self.settings.analytics_enabled and cfg.components.usageTracking and rec.uid:
            out.extend(self._usage(rec))
        if self.settings.audit_enabled and cfg.components.securityAudit:
            event = AUDIT_EVENT.get(rec.outcome)
            if rec.fn != "enrichCVWithExternalData" and rec.outcome is Outcome.SUCCESS:
                event = None  # only access to the gated feature is audited as granted
            if event:
                out.append(self._audit(rec, event))
        return out

    # -- aggregates -------------------------------------------------------------------------

    def aggregate_writes(self, at: datetime, counters: Mapping[str, Any]) -> list[Write]:
        """The same counters into one random shard of the minute, hour and day buckets."""
        shard = self._rng(self.settings.metric_shards)
        out = []
        for g, (fmt, ttl) in GRANULARITIES.items():
            start = _floor(at, g)
            out.append(
                Write(
                    f"{METRICS}/{g}_{start.strftime(fmt)}_{shard}",
                    {
                        "granularity": g,
                        "bucketStart": start,
                        "shard": shard,
                        "expireAt": start + ttl,
                        **counters,
                    },
                )
            )
        return out

    def _counters(self, rec: CallRecord) -> dict[str, Any]:
        """Counters for one call. ``c`` holds the enrichment product's figures (contract 2.4),
        ``sec`` the security figures of every function, ``fn`` per-function counts."""
        o = rec.outcome
        c: dict[str, Any] = {}
        sec: dict[str, Any] = {}
        if rec.fn == "enrichCVWithExternalData":
            c["requests"] = Inc(1)
            if o in (Outcome.SUCCESS, Outcome.PARTIAL):
                c["successful"] = Inc(1)
            if o in (Outcome.FAILED, Outcome.INTERNAL, Outcome.UNAVAILABLE):
                c["failed"] = Inc(1)
            if rec.service_error or o in (Outcome.INTERNAL, Outcome.UNAVAILABLE):
                c["errors"] = Inc(1)
            if o in _DENIALS:
                c["denied"] = Inc(1)
            if rec.tier == "premium":
                c["premiumRequests"] = Inc(1)
            elif rec.tier == "free":
                c["freeRequests"] = Inc(1)
            if o in _ENRICHED and rec.access == "preview":
                c["previews"] = Inc(1)
            if o in _ENRICHED and rec.access == "full":
                c["fullRequests"] = Inc(1)
                if rec.gated and rec.tier != "premium":
                    # Must stay 0: a full answer to a non-premium user inside the gate.
                    c["unauthorizedFull"] = Inc(1)
            if o is Outcome.DENIED and rec.reason == "premium_required":
                c["gateShown"] = Inc(1)
            if o in (Outcome.DENIED, Outcome.NOT_FOUND):
                c["unauthorizedAttempts"] = Inc(1)
            if o in _NAMED:
                c[_NAMED[o]] = Inc(1)
            hits = sum(1 for s in rec.sources if s.cached)
            if hits:
                c["cacheHits"] = Inc(hits)
        if rec.event:
            c["trackedEvents"] = Inc(1)
            if rec.event == "upgrade_clicked":
                c["upgradeClicks"] = Inc(1)
        if o is Outcome.DENIED or (o is Outcome.NOT_FOUND and rec.fn == "enrichCVWithExternalData"):
            sec["unauthorizedAttempts"] = Inc(1)
        if o is Outcome.RATE_LIMITED:
            sec["rateLimitViolations"] = Inc(1)
        if o is Outcome.UNAUTHENTICATED:
            sec["unauthenticated"] = Inc(1)
        fn_error = rec.service_error or o in (Outcome.INTERNAL, Outcome.UNAVAILABLE)
        # Latency is the time of answers that did the work: fast refusals (gate, limits, bad
        # input) would pull p95 down and hide a slow enrichment, above all in the gated cohort.
        timed = o not in _DENIALS
        lat = {str(bucket_of(rec.duration_ms)): Inc(1)}
        fn_counts: dict[str, Any] = {"requests": Inc(1)}
        if timed:
            fn_counts["lat"] = lat
        if fn_error:
            fn_counts["errors"] = Inc(1)
        if o in _DENIALS:
            fn_counts["denied"] = Inc(1)
        doc: dict[str, Any] = {"fn": {rec.fn: fn_counts}}
        if c:
            doc["c"] = c
        if sec:
            doc["sec"] = sec
        if rec.sources:
            src: dict[str, Any] = {}
            for s in rec.sources:
                if s.status == "skipped":
                    continue
                entry: dict[str, Any] = {
                    "requests": Inc(1),
                    "lat": {str(bucket_of(s.duration_ms)): Inc(1)},
                }
                if s.status == "success":
                    entry["successful"] = Inc(1)
                else:
                    entry["failed"] = Inc(1)
                if s.status == "timeout":
                    entry["timeouts"] = Inc(1)
                if s.cached:
                    entry["cacheHits"] = Inc(1)
                src[s.source] = entry
            if src:
                doc["src"] = src
        if rec.gated is not None and rec.fn == "enrichCVWithExternalData":
            side: dict[str, Any] = {"requests": Inc(1)}
            if timed:
                side["lat"] = dict(lat)
            if fn_error:
                side["errors"] = Inc(1)
            if "previews" in c:
                side["previews"] = Inc(1)
            if "gateShown" in c:
                side["gateShown"] = Inc(1)
            doc["cohort"] = {"in" if rec.gated else "out": side}
        return doc

    # -- usage and funnel -------------------------------------------------------------------

    def _usage(self, rec: CallRecord) -> list[Write]:
        if rec.uid is None:
            raise ValueError("usage records need the caller's uid")
        out: list[Write] = []
        user_path = f"{USAGE}/{rec.uid}"
        expire = rec.at + timedelta(days=self.settings.event_ttl_days)
        kind = _event_type(rec)
        event: dict[str, Any] = {
            "uid": rec.uid,
            "type": kind,
            "at": rec.at,
            "fn": rec.fn,
            "outcome": rec.outcome.value,
            "tier": rec.tier,
            "access": rec.access,
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
        out.append(Write(f"{user_path}/events/{uuid.uuid4().hex}", event, merge=False))
        stats: dict[str, Any] = {"uid": rec.uid}
        if rec.fn == "enrichCVWithExternalData" and rec.outcome in (
            Outcome.SUCCESS,
            Outcome.PARTIAL,
            Outcome.FAILED,
            Outcome.INTERNAL,
            Outcome.DENIED,
            Outcome.RATE_LIMITED,
        ):
            totals: dict[str, Any] = {"requests": Inc(1)}
            if rec.outcome in (Outcome.SUCCESS, Outcome.PARTIAL):
                totals["successful"] = Inc(1)
            if rec.outcome in (Outcome.FAILED, Outcome.INTERNAL):
                totals["failed"] = Inc(1)
            if rec.outcome is Outcome.RATE_LIMITED:
                totals["rateLimited"] = Inc(1)
            if rec.access == "preview" and rec.outcome in (
                Outcome.SUCCESS,
                Outcome.PARTIAL,
                Outcome.FAILED,
            ):
                totals["previews"] = Inc(1)
            if rec.access == "full" and rec.outcome in (
                Outcome.SUCCESS,
                Outcome.PARTIAL,
                Outcome.FAILED,
            ):
                totals["full"] = Inc(1)
            stats["totals"] = totals
            by_source: dict[str, Any] = {}
            for s in rec.sources:
                if s.status == "skipped":
                    continue
                by_source[s.source] = {
                    "requests": Inc(1),
                    ("successful" if s.status == "success" else "failed"): Inc(1),
                }
            if by_source:
                stats["bySource"] = by_source
            if rec.outcome in (Outcome.SUCCESS, Outcome.PARTIAL, Outcome.FAILED):
                stats["durationMsSum"] = Inc(round(rec.duration_ms, 1))
                stats["durationCount"] = Inc(1)
                stats["lastUsedAt"] = rec.at
        if kind in ("preview", "gate"):
            # Only what the server served or refused: client events never decide conversions.
            stats["lastFunnelAt"] = rec.at
        out.append(Write(user_path, stats))
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
        return Write(f"{AUDIT}/{uuid.uuid4().hex}", doc, merge=False)


def _event_type(rec: CallRecord) -> str:
    if rec.event:
        return rec.event
    if rec.outcome is Outcome.DENIED and rec.reason == "premium_required":
        return "gate"
    if rec.outcome in (Outcome.SUCCESS, Outcome.PARTIAL, Outcome.FAILED) and rec.access:
        return rec.access  # "preview" or "full"
    return rec.outcome.value


def _floor(at: datetime, g: str) -> datetime:
    if g == "m":
        return at.replace(second=0, microsecond=0)
    if g == "h":
        return at.replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def bucket_key(at: datetime, g: str) -> str:
    """The bucket key of ``at`` at granularity ``g`` (as used in document ids)."""
    return _floor(at, g).strftime(GRANULARITIES[g][0])


def floor_to(at: datetime, g: str) -> datetime:
    """The start of the bucket containing ``at``."""
    return _floor(at, g)

"""A phase's success metrics over its monitoring window, from the hour aggregates.

The window: ``W`` is the phase's monitoring window (beta 48 h, premium 72 h, full 7 days,
``plan.PLAN``). The metrics sum the hour buckets (``external_data_metrics`` granularity ``h``,
shards added) whose start lies in ``[floor_hour(now - W), now]`` — the current, incomplete hour
included, so ``status`` shows live numbers — and never before ``phaseSince``: when the first hour
began before the phase did, the window starts at the first full hour after ``phaseSince`` (the
partial hour's bucket mixes in minutes of the previous phase, whose failures are not this
phase's; up to 59 minutes at the phase's start are left out instead). ``phaseSince`` is when the phase was
entered (written by ``changes.apply_change``; ``updatedAt`` for docs written before it existed).
Every check must pass for ``advance``; a check with no data fails ("no data": nothing held if
nothing was measured), and so does ``window elapsed`` until ``now - phaseSince >= W``.

Metric definitions (``t`` = the window's buckets summed; all counters are the enrichment
callable's, see ``gating/recording.py``):

beta (48 h)
  - critical errors = ``t.c.errors`` (service failures, contract 2.4); must be 0.
  - p95 latency = 95th percentile of the summed histogram ``t.fn.enrichCVWithExternalData.lat``
    (every call of the enrichment callable); must be < 2500 ms. Histogram buckets are 5% wide;
    the value is the bucket's geometric middle.
  - completion = ``c.successful / (c.successful + c.failed)``: of the enrichments admitted past the
    gate and the rate limit, the share that returned data (``failed`` is: no source succeeded,
    engine crash, or store unavailable); must be > 90%.
  - preview-to-premium conversion = ``cohort.in.conversions / (cohort.in.previews +
    cohort.in.gateShown)``: premium conversions of gated users per gate exposure (a preview
    answer or a ``premium_required`` refusal) inside the cohort; must be > 10%.
  - unauthorized full access granted = ``c.unauthorizedFull`` (a full answer to a non-premium
    user while the gate applied to them); must be 0.
premium (72 h)
  - stable latency: the p95 of ``fn.enrichCVWithExternalData.lat`` per hour bucket, over hours
    with at least ``MIN_CALLS_PER_HOUR`` calls (quieter hours say little about latency and are
    skipped); stable when every such hour's p95 is at most 20% above the median of those hourly
    p95s. Needs at least ``MIN_STABLE_HOURS`` such hours. With 5%-wide histogram buckets this
    means no hour's p95 sits four buckets (1.05^4 = 1.216) or more above the median hour's.
  - premium access control held = ``c.gateShown / (c.gateShown + c.unauthorizedFull)``: of the
    full-enrichment requests by non-premium users inside the gate, the share refused; must be
    100% (vacuously 100% with no such requests).
  - usage data collection ("Analytics: comprehensive usage data collection"): the config's
    ``components.usageTracking`` is on now, the window's aggregates counted calls
    (``c.requests``) and the users' usage events (``external_data_usage/*/events``) hold at least
    one in the window; "no data" without calls.
  - support tickets ("<5% support tickets related to external data"): not measured, the system
    has no ticket data; shown, never blocking.
full (7 days, shown by ``status`` and ``report phase``; there is no phase to advance to): stable
latency, premium access control and usage data collection as in premium, and
  - free-user adoption ("User Adoption: >60% of free users engage with external data previews")
    = distinct free users with a preview or a ``premium_required`` gate / distinct free users who
    called the enrichment (README's ``previewEngagementRate``, from the usage events); > 60%.
  - preview->premium conversion ("Conversion Rate: >20%") = distinct users who turned premium in
    the window within 7 days after a preview or gate / distinct free users with a preview or gate
    in the window (README's ``conversionRate``, capped at 1); > 20%.
  - premium subscriptions increase ("Revenue Impact"): not measured (no subscription or revenue
    baseline; the window's conversions are shown); never blocking.

Beta's plan line "Security: Zero unauthorized access attempts" is read as "unauthorized full
access granted = 0": gated free users asking for full and being refused (``unauthorizedAttempts``,
``gateShown``) are the gate working, expected in every phase, so counting them would block every
phase with a gate; what must never happen is a full answer to a non-premium user inside it.

A check that is "not measured" has ``ok`` true: shown so that nothing in the plan is silently
left out, but the system cannot hold it, so it does not block ``advance``.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from analytics.admin import free_users, funnel
from analytics.metrics import get, num, read_buckets, total
from common.clock import iso
from common.histogram import count, merge, percentile
from gating.rollout import Phase, RolloutConfig
from rollout_control import plan
from stores.base import DocumentStore
from stores.schema import EVENTS, floor_to

ENRICH_LAT = "fn.enrichCVWithExternalData.lat"
P95_LIMIT_MS = 2500.0
COMPLETION_MIN = 0.90
CONVERSION_MIN = 0.10
ADOPTION_MIN = 0.60
FULL_CONVERSION_MIN = 0.20
NOT_MEASURED = "not measured"
STABLE_FACTOR = 1.20
MIN_CALLS_PER_HOUR = 20
MIN_STABLE_HOURS = 3


@dataclass(frozen=True)
class Check:
    """One success metric against its threshold."""

    name: str
    threshold: str
    value: str
    ok: bool
    """Does not block ``advance`` (true for "ok" and "not measured")."""
    status: str
    """"ok", "FAIL", "no data", "wait" or "not measured"."""
    numbers: Mapping[str, Any]
    """The raw figures behind ``value`` (kept as evidence)."""


@dataclass(frozen=True)
class Usage:
    """What the users' own usage records say over the window (read by ``phase_health``)."""

    tracking: bool
    """``components.usageTracking`` in the config now."""
    events: int
    """Usage events found in the window (the read stops at the first: presence)."""
    free_callers: int = 0
    """Distinct free users who called the enrichment (``analytics.admin.free_users``)."""
    funnel_users: int = 0
    """Distinct free users with a preview or gate (``analytics.admin.funnel``)."""
    converted: int = 0
    """Distinct users who turned premium within 7 days after a preview or gate."""


@dataclass(frozen=True)
class PhaseHealth:
    """The success metrics of one phase over its window."""

    phase: Phase
    window: timedelta | None
    start: datetime | None
    end: datetime
    phase_since: datetime | None
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """True when every check passes."""
        return all(c.ok for c in self.checks)

    def to_evidence(self) -> dict[str, Any]:
        """The document form recorded in history."""
        return {
            "phase": self.phase.value,
            "window": {
                "from": self.start,
                "to": self.end,
                "hours": self.window.total_seconds() / 3600 if self.window else None,
            },
            "checks": [
                {
                    "name": c.name,
                    "threshold": c.threshold,
                    "value": c.value,
                    "status": c.status,
                    "numbers": dict(c.numbers),
                }
                for c in self.checks
            ],
        }


def _check(name: str, threshold: str, value: str, ok: bool | None, **numbers: Any) -> Check:
    if ok is None:
        return Check(name, threshold, value or "-", False, "no data", numbers)
    return Check(name, threshold, value, ok, "ok" if ok else "FAIL", numbers)


def _not_measured(name: str, threshold: str, why: str, **numbers: Any) -> Check:
    """A plan metric the system has no data for: shown, never blocking."""
    return Check(name, threshold, f"{NOT_MEASURED}: {why}", True, NOT_MEASURED, numbers)


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _ms(x: float) -> str:
    return f"{x / 1000:.2f} s" if x >= 1000 else f"{x:.0f} ms"


def _elapsed_check(window: timedelta, since: datetime | None, now: datetime) -> Check:
    hours = window.total_seconds() / 3600
    if since is None:
        return Check("window elapsed", f">= {hours:.0f} h in phase", "unknown", False, "wait", {})
    elapsed = (now - since).total_seconds() / 3600
    ok = elapsed >= hours
    return Check(
        "window elapsed",
        f">= {hours:.0f} h in phase",
        f"{elapsed:.1f} h",
        ok,
        "ok" if ok else "wait",
        {"elapsedHours": round(elapsed, 2), "windowHours": hours, "phaseSince": iso(since)},
    )


def beta_checks(t: Mapping[str, Any]) -> list[Check]:
    """The beta phase's checks over the summed window ``t`` (see the module docstring)."""
    errors = num(t, "c.errors")
    hist = merge([get(t, ENRICH_LAT) or {}])
    calls = count(hist)
    p95 = percentile(hist, 0.95)
    ok_n, failed = num(t, "c.successful"), num(t, "c.failed")
    previews, gates = num(t, "cohort.in.previews"), num(t, "cohort.in.gateShown")
    conversions = num(t, "cohort.in.conversions")
    unauthorized = num(t, "c.unauthorizedFull")
    done = ok_n + failed
    exposures = previews + gates
    return [
        _check("critical errors", "= 0", str(errors), errors == 0, errors=errors),
        _check(
            "p95 latency",
            "< 2.5 s",
            _ms(p95) if calls else "",
            p95 < P95_LIMIT_MS if calls else None,
            p95Ms=p95,
            calls=calls,
        ),
        _check(
            "completion",
            "> 90%",
            f"{_pct(ok_n / done)} ({ok_n}/{done})" if done else "",
            ok_n / done > COMPLETION_MIN if done else None,
            successful=ok_n,
            failed=failed,
        ),
        _check(
            "preview->premium conversion",
            "> 10%",
            f"{_pct(conversions / exposures)} ({conversions}/{exposures})" if exposures else "",
            conversions / exposures > CONVERSION_MIN if exposures else None,
            conversions=conversions,
            previews=previews,
            gateShown=gates,
        ),
        _check(
            "unauthorized full access",
            "= 0",
            str(unauthorized),
            unauthorized == 0,
            unauthorizedFull=unauthorized,
        ),
    ]


def premium_checks(buckets: Mapping[datetime, Mapping[str, Any]]) -> list[Check]:
    """The premium phase's checks over the window's hour buckets (see the module docstring)."""
    hourly: list[tuple[datetime, float, int]] = []
    for start in sorted(buckets):
        hist = merge([get(buckets[start], ENRICH_LAT) or {}])
        n = count(hist)
        if n >= MIN_CALLS_PER_HOUR:
            hourly.append((start, percentile(hist, 0.95), n))
    if len(hourly) >= MIN_STABLE_HOURS:
        median = statistics.median(p for _, p, _ in hourly)
        worst = max(hourly, key=lambda h: h[1])
        ratio = worst[1] / median if median else 1.0
        stable = _check(
            "stable latency",
            "hourly p95 <= 1.2 x median",
            f"worst {_ms(worst[1])} at {worst[0]:%H:00} vs median {_ms(median)} ({ratio:.2f}x)",
            ratio <= STABLE_FACTOR,
            hours=len(hourly),
            medianP95Ms=median,
            worstP95Ms=worst[1],
            worstHour=iso(worst[0]),
        )
    else:
        stable = _check(
            "stable latency",
            "hourly p95 <= 1.2 x median",
            f"{len(hourly)} hour(s) with >= {MIN_CALLS_PER_HOUR} calls, need {MIN_STABLE_HOURS}",
            None,
            hours=len(hourly),
        )
    t = total(buckets)
    gates, unauthorized = num(t, "c.gateShown"), num(t, "c.unauthorizedFull")
    attempts = gates + unauthorized
    held = gates / attempts if attempts else 1.0
    access = _check(
        "premium access control",
        "100% held",
        f"{_pct(held)} ({gates}/{attempts} refused)" if attempts else "100% (no attempts)",
        unauthorized == 0,
        gateShown=gates,
        unauthorizedFull=unauthorized,
    )
    return [stable, access]


def usage_check(t: Mapping[str, Any], usage: Usage | None) -> Check:
    """Usage data collection: tracking on, calls aggregated, usage events recorded."""
    name, threshold = "usage data collection", "usageTracking on, events + aggregates recorded"
    calls = num(t, "c.requests")
    if usage is None or not calls:
        return _check(name, threshold, "", None, calls=calls)
    missing = []
    if not usage.tracking:
        missing.append("usageTracking off")
    if not usage.events:
        missing.append("no usage events in the window")
    value = "; ".join(missing) if missing else f"on; usage events and {calls} calls recorded"
    return _check(
        name,
        threshold,
        value,
        not missing,
        tracking=usage.tracking,
        events=usage.events,
        calls=calls,
    )


def full_checks(buckets: Mapping[datetime, Mapping[str, Any]], usage: Usage | None) -> list[Check]:
    """The full phase's checks (see the module docstring)."""
    t = total(buckets)
    free, engaged, converted = (
        (usage.free_callers, usage.funnel_users, usage.converted) if usage else (0, 0, 0)
    )
    adoption = _check(
        "free-user adoption",
        "> 60% (free users with preview/gate / free callers)",
        f"{_pct(engaged / free)} ({engaged}/{free})" if free else "",
        engaged / free > ADOPTION_MIN if free else None,
        engagedFreeUsers=engaged,
        freeUsers=free,
    )
    rate = min(1.0, converted / engaged) if engaged else 0.0
    conversion = _check(
        "preview->premium conversion",
        "> 20% (premium within 7 d of preview/gate / users with one)",
        f"{_pct(rate)} ({converted}/{engaged})" if engaged else "",
        rate > FULL_CONVERSION_MIN if engaged else None,
        convertedUsers=converted,
        engagedFreeUsers=engaged,
    )
    conversions = num(t, "c.conversions")
    revenue = _not_measured(
        "premium subscriptions increase",
        "measurable increase",
        f"no subscription baseline ({conversions} conversions in the window)",
        conversions=conversions,
    )
    return [*premium_checks(buckets), usage_check(t, usage), adoption, conversion, revenue]


def phase_since_of(cfg: RolloutConfig, phase_since: Any) -> datetime | None:
    """When the current phase started: ``phaseSince``, else ``updatedAt``."""
    value = phase_since if isinstance(phase_since, datetime) else cfg.updatedAt
    return plain(value) if value is not None else None


def plain(t: datetime) -> datetime:
    """A plain UTC ``datetime`` (Firestore's ``DatetimeWithNanoseconds`` breaks on ``replace``)."""
    return datetime.fromtimestamp(t.timestamp(), tz=UTC)


def assess_phase(
    cfg: RolloutConfig,
    buckets: Mapping[datetime, Mapping[str, Any]],
    since: datetime | None,
    now: datetime,
    usage: Usage | None = None,
) -> PhaseHealth:
    """Pure: the current phase's checks from its window's hour buckets and (premium, full) the
    usage records' figures; without ``usage`` the checks that need them read "no data"."""
    window = plan.PLAN[cfg.phase].window
    if window is None:
        return PhaseHealth(cfg.phase, None, None, now, since, ())
    start = _window_start(window, since, now)
    buckets = {at: doc for at, doc in buckets.items() if at >= start}
    if cfg.phase is Phase.BETA:
        checks = beta_checks(total(buckets))
    elif cfg.phase is Phase.PREMIUM:
        checks = [
            *premium_checks(buckets),
            usage_check(total(buckets), usage),
            _not_measured(
                "support tickets",
                "< 5% related to external data",
                "no support-ticket data in this system",
            ),
        ]
    else:
        checks = full_checks(buckets, usage)
    return PhaseHealth(
        cfg.phase, window, start, now, since, (*checks, _elapsed_check(window, since, now))
    )


def _window_start(window: timedelta, since: datetime | None, now: datetime) -> datetime:
    """The first hour bucket of the window: ``floor_hour(now - W)``, unless that hour began
    before the phase did; then the first full hour after ``phaseSince`` (an hour bucket that
    holds minutes of the previous phase would count its failures against this one)."""
    start = floor_to(now - window, "h")
    if since is not None and since > start:
        start = floor_to(since, "h")
        if start < since:
            start += timedelta(hours=1)
    return start


def phase_health(
    store: DocumentStore, cfg: RolloutConfig, phase_since: Any, now: datetime
) -> PhaseHealth:
    """Read the window's hour buckets and assess the current phase."""
    since = phase_since_of(cfg, phase_since)
    window = plan.PLAN[cfg.phase].window
    if window is None:
        return assess_phase(cfg, {}, since, now)
    start = _window_start(window, since, now)
    end = now + timedelta(seconds=1)
    buckets = read_buckets(store, "h", start, end)
    usage = None if cfg.phase is Phase.BETA else read_usage(store, cfg, start, end)
    return assess_phase(cfg, buckets, since, now, usage)


def read_usage(store: DocumentStore, cfg: RolloutConfig, start: datetime, end: datetime) -> Usage:
    """The usage records' figures over ``[start, end)``: whether any usage event exists and, in
    full, the distinct users of the adoption and conversion checks (the analytics' own queries,
    so the figures match ``getExternalDataAnalytics``)."""
    events = store.query(
        EVENTS,
        [("tier", "in", ["free", "premium"]), ("at", ">=", start), ("at", "<", end)],
        group=True,
        limit=1,
    )
    usage = Usage(cfg.components.usageTracking, len(events))
    if cfg.phase is not Phase.FULL:
        return usage
    engaged, converted = funnel(store, start, end)
    free = free_users(store, start, end) | engaged
    return replace(
        usage, free_callers=len(free), funnel_users=len(engaged), converted=len(converted)
    )

"""Source circuit breakers (contract section 6) and the operator's source switches.

A source whose tries fail with ``upstream`` or ``timeout`` more than 50% of the time over the
last 5 complete minutes (at least 20 tries) is opened: switched off for 5 minutes. Then it is
half-open: ``PROBES_PER_HALF_OPEN`` probe calls go through (``usecases.source_switches``), and
once all of them have reported the breaker closes when they all succeeded, or opens again for 5
minutes when one failed upstream. Upstream outages open breakers; they never turn gating off.

To open, the figures are the minute aggregates' ``src.<name>.requests`` (tries, skipped
sources excluded), ``src.<name>.upstreamFailures`` and ``src.<name>.successful``, and the
failures must come from at least 5 distinct users (``srcFailedUsers.<name>``, minute buckets
only): no single user, e.g. one whose own website answers 503, switches a source off for all.
To close, only the probe calls count: each one drew a ticket on the half-open period's probe document
(``stores.schema.breaker_probe_path``) and records its outcome there, so a try made by an
instance still reading an older config (up to its config cache's age) never passes for a
probe, whichever minute it fell in. Every change
is a config change (``changes.apply_change``: compare-and-set plus a history entry with the
evidence), made only if the breaker is still the one judged (so two overlapping evaluator runs
move it once). One incident is logged at WARNING once: the first opening; reopening after
failed probes, closing, and an opening within ``same_incident`` (30 minutes) of the evaluator
closing it (the same outage flapping) are logged at INFO. (The breaker alert follows the
exported breaker-state gauge, which reads 0 while half-open, so a reopening can alert again.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from analytics.metrics import get, num
from common.vocab import SOURCES
from gating.rollout import Breaker, BreakerState, RolloutConfig
from rollout_control import changes
from stores.base import DocumentStore
from stores.schema import breaker_probe_path, floor_to

PROBES_PER_HALF_OPEN = 3
"""Calls let through to a half-open source before the evaluator judges them."""

PROBE_ANSWERED = "answered"
"""Probe outcome field: the source answered (success, or an answer such as not-found)."""
PROBE_FAILED = "failedUpstream"
"""Probe outcome field: the source failed with ``upstream`` or ``timeout``."""
PROBE_DRAWN = "calls"
"""The probe document's ticket counter (drawn by every call that met the half-open breaker)."""


@dataclass(frozen=True)
class BreakerThresholds:
    """The contract's numbers."""

    window_minutes: int = 5
    min_tries: int = 20
    failure_rate: float = 0.50
    min_failing_users: int = 5
    """Failed tries from at least this many distinct users (``srcFailedUsers``): one user's
    own failing target (their website answering 503) never switches a source off for all."""
    open_for: timedelta = timedelta(minutes=5)
    same_incident: timedelta = timedelta(minutes=30)
    """An opening this soon after the evaluator closed the breaker continues that incident:
    logged at INFO, not alerted again (contract 6: at most once per incident)."""

    @property
    def open_minutes(self) -> int:
        """``open_for`` in whole minutes, as the texts say it."""
        return int(self.open_for.total_seconds() // 60)


BREAKER_DEFAULT = BreakerThresholds()


@dataclass(frozen=True)
class BreakerMove:
    """One breaker's change, with the numbers behind it."""

    source: str
    to: BreakerState
    text: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    reopen: bool = False
    """Open again after a half-open period: the same incident as the first opening."""
    judged: Breaker | None = None
    """The stored breaker the move was judged on (``None``: the source had no entry); the
    move is made only while the config still holds it (``apply_move``)."""


def _tally(
    buckets: Mapping[datetime, Mapping[str, Any]], mins: Sequence[datetime], source: str
) -> dict[str, int]:
    """The source's tries over ``mins``: answers from the cache are no try of the source
    (contract 6 judges its tries), so they count in neither the tries nor the successes."""
    t = {
        key: sum(num(buckets.get(m, {}), f"src.{source}.{key}") for m in mins)
        for key in ("requests", "upstreamFailures", "successful", "cacheHits")
    }
    t["requests"] = max(0, t["requests"] - t["cacheHits"])
    t["successful"] = max(0, t["successful"] - t["cacheHits"])
    return t


def failing_users(
    buckets: Mapping[datetime, Mapping[str, Any]], mins: Sequence[datetime], source: str
) -> int:
    """Distinct users whose tries of ``source`` failed upstream in these minutes (the keys of
    the minute buckets' ``srcFailedUsers.<name>``)."""
    who: set[str] = set()
    for m in mins:
        found = get(buckets.get(m, {}), f"srcFailedUsers.{source}")
        if isinstance(found, Mapping):
            who.update(found.keys())
    return len(who)


def _rate(t: Mapping[str, int]) -> float:
    return t["upstreamFailures"] / t["requests"] if t["requests"] else 0.0


def probe_path(cfg: RolloutConfig, source: str, now: datetime) -> str | None:
    """The probe document of ``source``'s half-open period at ``now``; ``None`` when it is not
    half-open, or its period has no start (a hand-written breaker: its calls run unprobed)."""
    b = cfg.breakers.get(source)
    start = b.half_open_from if b else None
    if start is None or cfg.breaker(source, now) is not BreakerState.HALF_OPEN:
        return None
    return breaker_probe_path(source, start)


def probe_paths(cfg: RolloutConfig, now: datetime) -> dict[str, str]:
    """The probe document of each source whose breaker is half-open at ``now``."""
    paths = {source: probe_path(cfg, source, now) for source in SOURCES}
    return {source: path for source, path in paths.items() if path is not None}


def assess_breakers(
    cfg: RolloutConfig,
    buckets: Mapping[datetime, Mapping[str, Any]],
    now: datetime,
    th: BreakerThresholds = BREAKER_DEFAULT,
    probes: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> list[BreakerMove]:
    """Pure: which breakers change at ``now`` on these complete minute buckets and, for
    half-open breakers, their probe documents (``probes``, by source; see ``probe_paths``)."""
    end = floor_to(now, "m")
    moves = []
    for source in SOURCES:
        b = cfg.breakers.get(source, Breaker())
        state = cfg.breaker(source, now)
        move = (
            _judge_closed(source, b, buckets, end, th)
            if state is BreakerState.CLOSED
            else _judge_half_open(source, b, (probes or {}).get(source) or {}, now, th)
            if state is BreakerState.HALF_OPEN
            else None
        )
        if move is not None:
            moves.append(replace(move, judged=cfg.breakers.get(source)))
    return moves


def _judge_closed(
    source: str,
    b: Breaker,
    buckets: Mapping[datetime, Mapping[str, Any]],
    end: datetime,
    th: BreakerThresholds,
) -> BreakerMove | None:
    mins = [end - timedelta(minutes=k) for k in range(th.window_minutes, 0, -1)]
    if b.since is not None:  # only minutes after the breaker last closed
        mins = [m for m in mins if m >= floor_to(b.since, "m") + timedelta(minutes=1)]
    t = _tally(buckets, mins, source)
    users = failing_users(buckets, mins, source)
    if t["requests"] < th.min_tries or _rate(t) <= th.failure_rate or users < th.min_failing_users:
        return None
    text = (
        f"{source}: {t['upstreamFailures']} of {t['requests']} tries failed upstream over the "
        f"last {len(mins)} minutes ({_rate(t) * 100:.0f}% > {th.failure_rate * 100:.0f}%) for "
        f"{users} distinct users: switched off for {th.open_minutes} minutes"
    )
    evidence: dict[str, Any] = {**t, "failingUsers": users, "minutes": len(mins)}
    # Only the evaluator writes a closed breaker with a time: closed after its probes succeeded.
    if b.state is BreakerState.CLOSED and b.since is not None:
        ago = end - floor_to(b.since, "m")
        if ago <= th.same_incident:
            text += f" (closed {int(ago.total_seconds() // 60)} min ago: the same incident)"
            return BreakerMove(source, BreakerState.OPEN, text, evidence, reopen=True)
    return BreakerMove(source, BreakerState.OPEN, text, evidence)


def _judge_half_open(
    source: str,
    b: Breaker,
    probe: Mapping[str, Any],
    now: datetime,
    th: BreakerThresholds,
) -> BreakerMove | None:
    """Judged once every ticket has reported: closed when all the probes succeeded, open again
    when one failed. Tickets drawn that never reported (crashed calls, failed writes) start a
    new half-open period once ``open_for`` has passed since the period began."""
    answered, failed = num(probe, PROBE_ANSWERED), num(probe, PROBE_FAILED)
    t = {"requests": answered + failed, "successful": answered, "upstreamFailures": failed}
    if t["requests"] < PROBES_PER_HALF_OPEN:
        drawn = num(probe, PROBE_DRAWN)
        began = b.half_open_from
        if drawn >= PROBES_PER_HALF_OPEN and began is not None and now >= began + th.open_for:
            text = (
                f"{source}: {drawn} probe tickets drawn, {t['requests']} outcome(s) recorded in "
                f"{th.open_minutes} minutes ({answered} answered, {failed} failed upstream): "
                f"probing again after another {th.open_minutes} minutes"
            )
            return BreakerMove(source, BreakerState.OPEN, text, {**t, "drawn": drawn}, reopen=True)
        return None  # not every probe has reported yet
    if failed == 0:
        text = f"{source}: probe calls succeeded ({answered} of {t['requests']}): back on"
        return BreakerMove(source, BreakerState.CLOSED, text, dict(t))
    text = (
        f"{source}: probe calls failed upstream ({failed} of {t['requests']}): "
        f"switched off for another {th.open_minutes} minutes"
    )
    return BreakerMove(source, BreakerState.OPEN, text, dict(t), reopen=True)


def apply_move(
    store: DocumentStore,
    move: BreakerMove,
    now: datetime,
    by: str,
    th: BreakerThresholds = BREAKER_DEFAULT,
    current: changes.Current | None = None,
) -> changes.ChangeResult:
    """Record the breaker's new state as a config change with its evidence. The change is
    judged again on the config it is applied to: when the breaker there is no longer the one
    the move was judged on (another evaluator run moved it first), nothing is written
    (``changes.NoChange``), so one incident is never opened, alerted or extended twice."""
    until = now + th.open_for if move.to is BreakerState.OPEN else None
    state = {"state": move.to.value, "since": now, "until": until}

    def mutate(doc: dict[str, Any], fresh: RolloutConfig) -> str:
        if fresh.breakers.get(move.source) != move.judged:
            raise changes.NoChange(f"breaker {move.source} changed since it was judged")
        breakers = dict(doc.get("breakers") or {})
        breakers[move.source] = state
        doc["breakers"] = breakers
        return f"breaker {move.source} {move.to.value.replace('_', '-')}"

    return changes.apply_change(
        store,
        f"breaker {move.to.value}",
        mutate,
        by=by,
        reason=f"automatic circuit breaker: {move.text}",
        now=now,
        evidence={"source": move.source, "to": move.to.value, **move.evidence},
        expected_version=current.version if current else None,
        current=current,
    )


def set_source(
    store: DocumentStore,
    source: str,
    enabled: bool,
    *,
    by: str,
    reason: str,
    now: datetime,
    expected_version: int | None = None,
) -> changes.ChangeResult:
    """The operator's switch ``sources.{name}.enabled`` (``rollout.py source NAME on|off``)."""
    if source not in SOURCES:
        raise changes.InvalidChange(f"unknown source {source!r} (known: {', '.join(SOURCES)})")

    def mutate(doc: dict[str, Any], _cfg: RolloutConfig) -> str:
        sources = {k: dict(v) for k, v in (doc.get("sources") or {}).items()}
        sources[source] = {"enabled": enabled}
        doc["sources"] = sources
        return f"source {source} {'on' if enabled else 'off'}"

    return changes.apply_change(
        store,
        f"source {'on' if enabled else 'off'}",
        mutate,
        by=by,
        reason=reason,
        now=now,
        expected_version=expected_version,
    )

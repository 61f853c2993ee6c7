"""Automatic rollback: read the recent minute aggregates, decide, and act at most once.

``assess`` is pure (config, minute buckets, clock, thresholds -> ``Assessment``); ``evaluate``
does the I/O around it: one config read, one query of the minute buckets, and — when a trigger
fires and this is not a dry run — one ``changes.apply_change`` (compare-and-set + history entry
with the evidence), plus a structured CRITICAL log line (contract 6: every rollback).

Minutes: only complete minutes count. At 12:10:40 the "last 10 minutes" are the buckets starting
12:00 … 12:09; the running minute (12:10) is still filling and is never used. A minute's figures
are its shards summed (``external_data_metrics`` granularity ``m``), counters of the enrichment
callable: ``c.requests``, ``c.errors`` (service failures, contract 2.4), ``c.successful``.

Immediate rollback (the kill switch, ``components.premiumGating = false``) + CRITICAL alert when:

- ``error-rate``: in each of the last 10 complete minutes, ``c.errors / c.requests > 5%``. A
  minute without requests has no error rate and does not count as failing: it breaks the run
  (ten minutes in a row must each show the failure; a quiet minute is not evidence of one).
- ``no-success``: in each of the last 2 complete minutes at least one call failed
  (``c.errors >= 1``), and no answer in them was given without a service failure
  (``c.requests - c.denied - c.errors == 0``): an enrichment whose sources all failed upstream,
  or on the user's input, is an answer of a working service, so an upstream outage cannot fire
  it; refusals (``c.denied``) are evidence of neither.
- ``beta-error-rate``: phase beta, and the ``error-rate`` rule with 2% instead of 5%.

One gradual step (``plan.gradual_step``) + CRITICAL alert when, over the last 30 complete minutes,
the gated cohort (``cohort.in``) does worse than the users outside it (``cohort.out``) over the
same minutes, where there are enough of them; otherwise than the baseline recorded when the
phase started (``rollout_control.baseline``):

- ``cohort-latency``: p95 of ``cohort.in.lat`` > 1.2 x p95 of ``cohort.out.lat``. Needs at least
  50 calls on each side. The histograms' buckets are 5% wide, so this fires when the cohort's
  p95 reads at least four buckets above the outside's (1.05^4 = 1.216): a true difference of
  more than 26% always fires, one under 14% never does.
- ``cohort-conversion``: conversion = ``conversions / (previews + gateShown)`` per side; fires
  when the outside's rate is above 0 and the cohort's is below half of it (dropped by more than
  50%). Needs at least 50 exposures (``previews + gateShown``) on each side.

Never twice for the same incident:

- immediate: once gating is off there is nothing to switch off, so the triggers only report.
  After an operator restores gating, the evaluator records ``autoRollback.immediate.at`` and
  only uses minutes that start after it: a new rollback needs 10 (or 2) fresh minutes.
- gradual: the comparison only uses minutes that start after the cohort last changed
  (``cohortSince``, which every gradual step and every operator change of the phase,
  percentage, groups, fallback or kill switch moves), so after a step it waits for a full fresh
  30-minute window of the new cohort before it can step again.

Nothing acts while gating is inactive (phase off or kill switch on). In phase full there is no
outside group (the fallback is removed): the gradual triggers compare the cohort with the
baseline recorded when the phase started.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from analytics.metrics import get, num, read_buckets
from common.histogram import count, merge, percentile
from common.logs import log as default_log
from gating.rollout import BreakerState, Phase, RolloutConfig
from rollout_control import baseline, changes, plan
from rollout_control.breakers import BreakerMove, apply_move, assess_breakers, probe_paths
from rollout_control.health import plain
from stores.base import DocumentStore, Write
from stores.errors import StoreError
from stores.schema import EVALUATOR_PATH, floor_to

LogFn = Callable[..., None]


@dataclass(frozen=True)
class Thresholds:
    """Every number the evaluator decides with (the rollout plan's)."""

    error_rate: float = 0.05
    error_minutes: int = 10
    beta_error_rate: float = 0.02
    outage_minutes: int = 2
    guard_minutes: int = 30
    latency_worse: float = 0.20
    conversion_drop: float = 0.50
    min_latency_samples: int = 50
    min_exposures: int = 50
    min_minute_answers: int = 20
    """A minute is judged on its own only with at least this many answers (contract 6)."""
    min_window_answers: int = 50
    """The error-rate trigger needs this many answers in its window."""
    min_failing_users: int = 5
    """Either immediate trigger needs failures from this many distinct users."""
    beta_conversion_floor: float = 0.10
    """Beta's conversion baseline (the plan's alert floor): no gated phase came before it."""


DEFAULT = Thresholds()


@dataclass(frozen=True)
class Trigger:
    """One rule's verdict over its window."""

    name: str
    kind: str
    """"immediate" or "gradual"."""
    fired: bool
    """The rule's condition holds on fresh evidence."""
    text: str
    """One sentence with the numbers."""
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Assessment:
    """What the evaluator would do, and why."""

    action: str
    """"none", "immediate" or "gradual"."""
    triggers: tuple[Trigger, ...]
    notes: tuple[str, ...] = ()

    @property
    def fired(self) -> list[Trigger]:
        """The triggers behind ``action``."""
        return [t for t in self.triggers if t.fired and t.kind == self.action]


@dataclass(frozen=True)
class EvaluationResult:
    """What one evaluation saw and did."""

    at: datetime
    dry_run: bool
    assessment: Assessment
    applied: bool
    """True when a change was written."""
    change: changes.ChangeResult | None
    config_version: int
    summary: str
    """One readable paragraph."""
    breakers: tuple[str, ...] = ()
    """The circuit-breaker changes made (or, in a dry run, that would be made), as sentences."""
    baseline: Mapping[str, Any] = field(default_factory=dict)
    """The phase's baseline the gradual rules used where the outside group is too small."""

    @property
    def action(self) -> str:
        """ "none", "immediate" or "gradual"."""
        return self.assessment.action


# -- pure logic -----------------------------------------------------------------------------


def _hm(t: datetime) -> str:
    return t.strftime("%H:%M")


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _ceil_minute(t: Any) -> datetime | None:
    if not isinstance(t, datetime):
        return None
    t = plain(t)
    floor = floor_to(t, "m")
    return floor if floor == t else floor + timedelta(minutes=1)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _minutes(end: datetime, n: int) -> list[datetime]:
    return [end - timedelta(minutes=k) for k in range(n, 0, -1)]


def _span(mins: Sequence[datetime]) -> str:
    """The minutes as ``HH:MM-HH:MM`` (end exclusive), for the triggers' sentences."""
    return f"{_hm(mins[0])}-{_hm(mins[-1] + timedelta(minutes=1))}"


def _window(mins: Sequence[datetime]) -> dict[str, Any]:
    """The minutes as the evidence's ``window`` (end exclusive)."""
    return {"from": mins[0], "to": mins[-1] + timedelta(minutes=1), "minutes": len(mins)}


def _trailing_streak(bad: Sequence[bool]) -> int:
    """How many of the latest minutes in a row failed: tells "not yet" from "not at all"."""
    streak = 0
    for b in reversed(bad):
        if not b:
            break
        streak += 1
    return streak


def failing_users(mins: Sequence[datetime], buckets: Mapping[datetime, Mapping[str, Any]]) -> int:
    """Distinct users with a failure of the service in these minutes (``failedUsers`` keys)."""
    who: set[str] = set()
    for m in mins:
        who.update(_mapping(get(buckets.get(m, {}), "failedUsers")).keys())
    return len(who)


def _error_rows(
    mins: Sequence[datetime], buckets: Mapping[datetime, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Requests, errors and error rate per minute (``None`` for a minute without calls)."""
    rows: list[dict[str, Any]] = []
    for m in mins:
        doc = buckets.get(m, {})
        req, err = num(doc, "c.requests"), num(doc, "c.errors")
        rows.append(
            {"minute": m, "requests": req, "errors": err, "errorRate": err / req if req else None}
        )
    return rows


def _error_text(
    label: str, threshold: float, n: int, streak: int, condition: bool, span: str, tally: str
) -> str:
    """The error rule's sentence: fired, failing for some minutes only, or not failing."""
    if condition:
        return f"{label} above {threshold * 100:g}% over the last {n} minutes ({span} UTC): {tally}"
    if streak:
        return (
            f"{label} above {threshold * 100:g}% in the last {streak} minute(s) only, {n} in a "
            f"row needed ({span} UTC: {tally})"
        )
    return f"{label} not above {threshold * 100:g}% over the last {n} minutes ({span} UTC: {tally})"


def _held(answers: int, users: int, th: Thresholds) -> str:
    """Why a window above the threshold did not act: the guards against one user or a quiet
    window moving the kill switch."""
    why = []
    if users < th.min_failing_users:
        why.append(f"failures from {users} distinct user(s), {th.min_failing_users} needed")
    if answers < th.min_window_answers:
        why.append(f"{answers} answers in the window, {th.min_window_answers} needed")
    return "; ".join(why) or "a busy minute was under the threshold"


def _error_rule(
    name: str,
    threshold: float,
    mins: Sequence[datetime],
    buckets: Mapping[datetime, Mapping[str, Any]],
    fresh_from: datetime | None,
    th: Thresholds = DEFAULT,
) -> Trigger:
    """Contract 6: every minute with at least ``min_minute_answers`` answers above the
    threshold, the window as a whole above it (so quiet minutes are judged within it), at
    least ``min_window_answers`` answers, failures from ``min_failing_users`` distinct users."""
    rows = _error_rows(mins, buckets)
    counted = [r for r in rows if r["requests"] >= th.min_minute_answers]
    tot_req = sum(r["requests"] for r in rows)
    tot_err = sum(r["errors"] for r in rows)
    users = failing_users(mins, buckets)
    window_bad = tot_req > 0 and tot_err / tot_req > threshold
    bad = [r["requests"] > 0 and r["errors"] / r["requests"] > threshold for r in rows]
    condition = (
        window_bad
        and all(r["errors"] / r["requests"] > threshold for r in counted)
        and tot_req >= th.min_window_answers
        and users >= th.min_failing_users
    )
    stale = condition and fresh_from is not None and mins[0] < fresh_from
    label = "beta error rate" if name == "beta-error-rate" else "error rate"
    rate_txt = _pct(tot_err / tot_req) if tot_req else "no calls"
    tally = (
        f"{tot_err} service failures of {tot_req} answers ({rate_txt}), {users} distinct "
        f"user(s) failing, {len(counted)} minute(s) with {th.min_minute_answers}+ answers"
    )
    text = _error_text(
        label, threshold, len(mins), _trailing_streak(bad), condition, _span(mins), tally
    )
    if window_bad and not condition:
        text = f"{label} not acted on over {_span(mins)} UTC: {tally}; {_held(tot_req, users, th)}"
    if stale:
        text += " (same incident as the last automatic rollback: not repeated)"
    evidence = {
        "rule": name,
        "threshold": threshold,
        "window": _window(mins),
        "perMinute": [
            {**r, "errorRate": round(r["errorRate"], 4) if r["errorRate"] is not None else None}
            for r in rows
        ],
        "requests": tot_req,
        "errors": tot_err,
        "failingUsers": users,
    }
    return Trigger(name, "immediate", condition and not stale, text, evidence)


def _outage_rule(
    mins: Sequence[datetime],
    buckets: Mapping[datetime, Mapping[str, Any]],
    fresh_from: datetime | None,
    th: Thresholds = DEFAULT,
) -> Trigger:
    rows: list[dict[str, Any]] = []
    for m in mins:
        b = buckets.get(m, {})
        requests, errors, denied = num(b, "c.requests"), num(b, "c.errors"), num(b, "c.denied")
        rows.append(
            {
                "minute": m,
                "requests": requests,
                "errors": errors,
                "successful": num(b, "c.successful"),
                # Answers the service gave without failing: successes, and enrichments whose
                # sources failed upstream or on the user's input (not ours: contract 6).
                "served": max(0, requests - denied - errors),
            }
        )
    succ = sum(r["successful"] for r in rows)
    served = sum(r["served"] for r in rows)
    err = sum(r["errors"] for r in rows)
    users = failing_users(mins, buckets)
    failing_each = all(r["errors"] >= 1 for r in rows)
    # "No success" means no answer the service gave without failing: an upstream outage (every
    # source failing) answers calls all the same, and must never turn gating off.
    condition = failing_each and served == 0 and users >= th.min_failing_users
    stale = condition and fresh_from is not None and mins[0] < fresh_from
    n = len(mins)
    span = _span(mins)
    if condition:
        text = (
            f"no successful call in the last {n} minutes ({span} UTC) while {err} calls failed"
            f" for {users} distinct users"
        )
        if stale:
            text += " (same incident as the last automatic rollback: not repeated)"
    else:
        text = (
            f"last {n} minutes: {succ} successful call(s), {served} answered without a service"
            f" failure, {err} service failure(s) for {users} distinct user(s)"
        )
    evidence = {
        "rule": "no-success",
        "window": _window(mins),
        "perMinute": rows,
        "successful": succ,
        "served": served,
        "errors": err,
        "failingUsers": users,
    }
    return Trigger("no-success", "immediate", condition and not stale, text, evidence)


def _side(
    buckets: Mapping[datetime, Mapping[str, Any]], mins: Sequence[datetime], side: str
) -> dict[str, Any]:
    hist = merge([get(buckets.get(m, {}), f"cohort.{side}.lat") or {} for m in mins])
    out: dict[str, Any] = {"latencyCalls": count(hist), "p95Ms": percentile(hist, 0.95)}
    for key in ("requests", "errors", "previews", "gateShown", "conversions"):
        out[key] = sum(num(buckets.get(m, {}), f"cohort.{side}.{key}") for m in mins)
    out["exposures"] = out["previews"] + out["gateShown"]
    out["conversionRate"] = out["conversions"] / out["exposures"] if out["exposures"] else None
    return out


def _guard_rules(
    buckets: Mapping[datetime, Mapping[str, Any]],
    end: datetime,
    fresh_from: datetime | None,
    th: Thresholds,
    baseline: Mapping[str, Any] | None = None,
) -> list[Trigger]:
    mins = _minutes(end, th.guard_minutes)
    span = f"{_hm(mins[0])}-{_hm(end)} UTC"
    window = {"from": mins[0], "to": end, "minutes": th.guard_minutes}
    if fresh_from is not None and mins[0] < fresh_from:
        wait = int((fresh_from - mins[0]).total_seconds() // 60)
        text = (
            f"cohort comparison waits for {wait} more minute(s): it needs {th.guard_minutes} "
            f"minutes after the cohort last changed ({_hm(fresh_from)} UTC)"
        )
        return [
            Trigger("cohort-latency", "gradual", False, text, {"window": window}),
            Trigger("cohort-conversion", "gradual", False, text, {"window": window}),
        ]
    cin, cout = _side(buckets, mins, "in"), _side(buckets, mins, "out")
    base = {"window": window, "in": cin, "out": cout, "baseline": dict(baseline or {})}
    return [_latency_trigger(base, span, th), _conversion_trigger(base, span, th)]


def _latency_trigger(base: Mapping[str, Any], span: str, th: Thresholds) -> Trigger:
    """``cohort-latency`` over fresh minutes: the cohort's p95 against the users outside it
    where they are enough, otherwise against the p95 recorded when the phase began."""
    cin, cout, recorded = base["in"], base["out"], base["baseline"]
    need = th.min_latency_samples
    if cout["latencyCalls"] >= need:
        ref, against = cout["p95Ms"], f"{cout['p95Ms']:.0f} ms outside"
    elif recorded.get("p95Ms"):
        ref, against = float(recorded["p95Ms"]), f"the phase baseline {recorded['p95Ms']:.0f} ms"
    else:
        ref, against = None, "nothing (too few calls outside the cohort, no baseline)"
    if cin["latencyCalls"] < need or not ref:
        return Trigger(
            "cohort-latency",
            "gradual",
            False,
            f"cohort p95 not compared over {span}: {cin['latencyCalls']} calls in the cohort "
            f"(need {need}), reference: {against}",
            {**base, "rule": "cohort-latency"},
        )
    worse = cin["p95Ms"] / ref - 1
    return Trigger(
        "cohort-latency",
        "gradual",
        cin["p95Ms"] > ref * (1 + th.latency_worse),
        f"cohort p95 {cin['p95Ms']:.0f} ms vs {against} over {span} "
        f"({worse * 100:+.0f}%, limit +{th.latency_worse * 100:.0f}%)",
        {**base, "rule": "cohort-latency", "threshold": th.latency_worse, "worse": round(worse, 4)},
    )


def _conversion_trigger(base: Mapping[str, Any], span: str, th: Thresholds) -> Trigger:
    """``cohort-conversion``: the cohort's conversion against the users outside it where they
    are enough, otherwise against the phase's recorded baseline."""
    cin, cout, recorded = base["in"], base["out"], base["baseline"]
    need = th.min_exposures
    if cout["exposures"] >= need:
        ref, against = cout["conversionRate"], f"{_pct(cout['conversionRate'])} outside"
    elif recorded.get("conversionRate") is not None:
        ref = float(recorded["conversionRate"])
        against = f"the phase baseline {_pct(ref)} ({recorded.get('conversionBasis', '')})"
    else:
        ref, against = None, "nothing (too few exposures outside the cohort, no baseline)"
    if cin["exposures"] < need or not ref:
        return Trigger(
            "cohort-conversion",
            "gradual",
            False,
            f"conversion not compared over {span}: {cin['exposures']} exposures in the cohort "
            f"(need {need}), reference: {against}",
            {**base, "rule": "cohort-conversion"},
        )
    rin = cin["conversionRate"]
    drop = 1 - rin / ref
    return Trigger(
        "cohort-conversion",
        "gradual",
        rin < ref * (1 - th.conversion_drop),
        f"conversion {_pct(rin)} in the cohort vs {against} over {span} "
        f"(drop {drop * 100:.0f}%, limit {th.conversion_drop * 100:.0f}%)",
        {
            **base,
            "rule": "cohort-conversion",
            "threshold": th.conversion_drop,
            "drop": round(drop, 4),
        },
    )


def assess(
    cfg: RolloutConfig,
    extras: Mapping[str, Any],
    buckets: Mapping[datetime, Mapping[str, Any]],
    now: datetime,
    th: Thresholds = DEFAULT,
    baseline: Mapping[str, Any] | None = None,
) -> Assessment:
    """Pure: which rule fires on these minute buckets at ``now`` (see the module docstring).

    ``extras`` are the config doc's control fields (``autoRollback``, ``cohortSince``);
    ``baseline`` the phase's recorded baseline (``rollout_control.baseline``), used by the
    gradual rules where the users outside the cohort are too few to compare with."""
    end = floor_to(now, "m")
    auto = _mapping(extras.get("autoRollback"))
    imm = _mapping(auto.get("immediate"))
    imm_fresh = _ceil_minute(imm.get("at"))
    triggers = [
        _error_rule(
            "error-rate", th.error_rate, _minutes(end, th.error_minutes), buckets, imm_fresh, th
        ),
        _outage_rule(_minutes(end, th.outage_minutes), buckets, imm_fresh, th),
    ]
    if cfg.phase is Phase.BETA:
        triggers.append(
            _error_rule(
                "beta-error-rate",
                th.beta_error_rate,
                _minutes(end, th.error_minutes),
                buckets,
                imm_fresh,
                th,
            )
        )
    gradual_fresh = _ceil_minute(extras.get("cohortSince"))
    grad = _mapping(auto.get("gradual"))
    g_at = _ceil_minute(grad.get("at"))
    if g_at is not None and (gradual_fresh is None or g_at > gradual_fresh):
        gradual_fresh = g_at
    triggers.extend(_guard_rules(buckets, end, gradual_fresh, th, baseline))

    notes: list[str] = []
    active = cfg.gating_active
    if not active:
        why = "phase is off" if cfg.phase is Phase.OFF else "the kill switch is already on"
        notes.append(f"premium gating is not active ({why}): nothing to roll back")
        triggers = [Trigger(t.name, t.kind, False, t.text, t.evidence) for t in triggers]
    if any(t.fired and t.kind == "immediate" for t in triggers):
        action = "immediate"
    elif any(t.fired and t.kind == "gradual" for t in triggers):
        action = "gradual"
    else:
        action = "none"
    return Assessment(action, tuple(triggers), tuple(notes))


# -- I/O ------------------------------------------------------------------------------------


def _state(cfg: RolloutConfig) -> str:
    gating = "active" if cfg.gating_active else "inactive"
    return (
        f"phase {cfg.phase.value}, {cfg.rolloutPercentage}%, gating {gating}, config v{cfg.version}"
    )


def _paragraph(
    now: datetime,
    cfg: RolloutConfig,
    a: Assessment,
    dry_run: bool,
    change: changes.ChangeResult | None,
    th: Thresholds,
) -> str:
    head = f"Evaluated at {now:%Y-%m-%d %H:%M:%S} UTC ({_state(cfg)})."
    if a.action == "none":
        quiet = "; ".join(dict.fromkeys(t.text for t in a.triggers))
        notes = (" " + " ".join(n[0].upper() + n[1:] + "." for n in a.notes)) if a.notes else ""
        return f"{head} No action: {quiet}.{notes}"
    fired = a.fired
    why = "; and ".join(t.text for t in fired)
    if a.action == "immediate":
        what = "turn premium gating off for everyone (kill switch, components.premiumGating=false)"
        after = "Everyone gets the pre-gating experience again within 30 s (config cache <= 10 s)."
    else:
        step = plan.gradual_step(cfg.phase, cfg.rolloutPercentage)
        what = f"take one gradual step ({step[1] if step else 'nothing left'})"
        after = f"The next step needs a fresh {th.guard_minutes}-minute window of the new cohort."
    if dry_run:
        return f"{head} DRY RUN, nothing written: it would {what}, because {why}."
    written = f"config v{change.version} with history entry {change.history_id}" if change else "?"
    return (
        f"{head} Automatic {a.action} rollback: {what}, because {why}. "
        f"Written as {written} "
        f"(evidence attached). {after}"
    )


def evaluate(
    store: DocumentStore,
    now: datetime,
    *,
    dry_run: bool = False,
    by: str = "evaluator",
    thresholds: Thresholds = DEFAULT,
    log: LogFn = default_log,
) -> EvaluationResult:
    """Read config and minute aggregates, assess, apply at most one rollback, move the source
    breakers, and record the heartbeat (``config/externalDataEvaluator``).

    A config write that loses a race with an operator is retried once on fresh reads; a
    config document that does not parse is reported (ERROR) and nothing is done."""
    th = thresholds
    for attempt in (1, 2):
        cur = changes.read_current(store, as_served=True)
        if cur.cfg is None:
            return _unreadable(now, dry_run, cur, log)
        cfg = cur.cfg
        end = floor_to(now, "m")
        span = max(th.error_minutes, th.outage_minutes, th.guard_minutes)
        buckets = read_buckets(store, "m", end - timedelta(minutes=span), end)
        base = _baseline(store, cfg, now)
        a = assess(cfg, cur.extras, buckets, now, th, base)
        moves = assess_breakers(cfg, buckets, now, probes=_probes(store, cfg, now))
        if a.action == "none" or dry_run:
            result = _no_rollback(now, cfg, a, dry_run, cur.version, th, base)
        else:
            try:
                result = _rollback(store, cur, a, now, by, th, log, base)
            except changes.Conflict:
                if attempt == 1:
                    continue
                raise
        texts = tuple(m.text for m in moves)
        if not dry_run:
            texts = _move_breakers(store, moves, now, by, log)
            _heartbeat(store, now, result, base)
        log("INFO", "rollout evaluator: " + result.action, summary=result.summary)
        return replace(result, breakers=texts)
    raise StoreError("unreachable")  # pragma: no cover


def _probes(
    store: DocumentStore, cfg: RolloutConfig, now: datetime
) -> dict[str, Mapping[str, Any] | None]:
    """The probe documents of the half-open breakers (one read, none when all are closed)."""
    paths = probe_paths(cfg, now)
    docs = store.get_many(list(paths.values())) if paths else {}
    return {source: docs.get(path) for source, path in paths.items()}


def _baseline(store: DocumentStore, cfg: RolloutConfig, now: datetime) -> dict[str, Any]:
    """The phase's recorded baseline; captured on the first run of a new phase."""
    state = store.get_many([EVALUATOR_PATH])[EVALUATOR_PATH] or {}
    recorded = state.get("baseline")
    if isinstance(recorded, Mapping) and baseline.is_current(recorded, cfg):
        return dict(recorded)
    previous = recorded if isinstance(recorded, Mapping) else None
    return baseline.capture(store, cfg, previous, now)


def _no_rollback(
    now: datetime,
    cfg: RolloutConfig,
    a: Assessment,
    dry_run: bool,
    version: int,
    th: Thresholds,
    base: Mapping[str, Any],
) -> EvaluationResult:
    summary = _paragraph(now, cfg, a, dry_run, None, th)
    return EvaluationResult(now, dry_run, a, False, None, version, summary, baseline=base)


def _rollback(
    store: DocumentStore,
    cur: changes.Current,
    a: Assessment,
    now: datetime,
    by: str,
    th: Thresholds,
    log: LogFn,
    base: Mapping[str, Any],
) -> EvaluationResult:
    reason = "automatic rollback: " + "; ".join(t.text for t in a.fired)
    change = _apply_rollback(store, cur, a, now, by, reason)
    cfg = cur.cfg or RolloutConfig()
    summary = _paragraph(now, cfg, a, False, change, th)
    _log_rollback(log, a, reason, change)
    return EvaluationResult(now, False, a, True, change, change.version, summary, baseline=base)


def _move_breakers(
    store: DocumentStore, moves: Sequence[BreakerMove], now: datetime, by: str, log: LogFn
) -> tuple[str, ...]:
    """Record each breaker change (fresh reads; a lost race is left to the next run, and a
    breaker another run moved since this one judged it is left alone) and log it: at WARNING,
    alerting, when the breaker first opens (once per incident, contract 6); at INFO when failed
    probes open it again, it opens within 30 minutes of its probes closing it, or it closes
    (the same incident)."""
    done = []
    for move in moves:
        try:
            change = apply_move(store, move, now, by)
        except (changes.Conflict, changes.NoChange):
            continue
        first = move.to is BreakerState.OPEN and not move.reopen
        log(
            "WARNING" if first else "INFO",
            f"source breaker {move.source} {move.to.value}",
            labels={"kind": "source_breaker"},
            kind="source_breaker",
            source=move.source,
            state=move.to.value,
            reason=move.text,
            configVersion=change.version,
            historyId=change.history_id,
            evidence=dict(move.evidence),
            alert=first,
        )
        done.append(move.text)
    return tuple(done)


def _heartbeat(
    store: DocumentStore, now: datetime, result: EvaluationResult, base: Mapping[str, Any]
) -> None:
    """``config/externalDataEvaluator``: when it last ran, what it did, the phase baseline."""
    doc = {"lastRunAt": now, "lastAction": result.action, "baseline": dict(base)}
    store.commit([Write(EVALUATOR_PATH, doc, merge=False)])


def _unreadable(now: datetime, dry_run: bool, cur: changes.Current, log: LogFn) -> EvaluationResult:
    """Report a config document that does not parse: the functions keep their last good
    config, so the evaluator must not guess one to act on."""
    text = (
        f"Evaluated at {now:%Y-%m-%d %H:%M:%S} UTC: the config document is unreadable "
        f"({cur.problem}); the functions serve their last good config. Nothing done."
    )
    log("ERROR", "rollout evaluator: config unreadable", problem=cur.problem)
    empty = Assessment("none", (), (text,))
    return EvaluationResult(now, dry_run, empty, False, None, cur.version, text)


def _rollback_mutation(
    base: Callable[[dict[str, Any], RolloutConfig], Any], kind: str, trigger: str, now: datetime
) -> Callable[[dict[str, Any], RolloutConfig], str]:
    """The config mutation of one automatic rollback: the operator's mutation (kill switch or
    gradual step) plus the ``autoRollback.<kind>`` mark that keeps the same incident from
    acting twice."""

    def mutate(doc: dict[str, Any], c: RolloutConfig) -> str:
        text = str(base(doc, c))
        auto = dict(doc.get("autoRollback") or {})
        auto[kind] = {"at": now, "trigger": trigger}
        doc["autoRollback"] = auto
        return text

    return mutate


def _apply_rollback(
    store: DocumentStore,
    cur: changes.Current,
    a: Assessment,
    now: datetime,
    by: str,
    reason: str,
) -> changes.ChangeResult:
    """Write the assessment's rollback as a compare-and-set against the version just read,
    with the fired triggers as the history entry's evidence; raises ``changes.Conflict``
    when an operator wrote first."""
    fired = a.fired
    evidence = {
        "triggers": [{"name": t.name, "text": t.text, **t.evidence} for t in fired],
        "evaluatedAt": now,
    }
    base = changes.kill_switch_mutation if a.action == "immediate" else changes.gradual_mutation
    return changes.apply_change(
        store,
        f"auto-rollback {a.action}",
        _rollback_mutation(base, a.action, fired[0].name, now),
        by=by,
        reason=reason,
        now=now,
        evidence=evidence,
        expected_version=cur.version,
        current=cur,
    )


def _log_rollback(log: LogFn, a: Assessment, reason: str, change: changes.ChangeResult) -> None:
    """The alerting log line of an applied rollback, immediate or gradual: CRITICAL (contract
    6), with the evidence minus the per-minute rows (too long for one log line)."""
    fired = a.fired
    phase = str((change.after or {}).get("phase", ""))
    log(
        "CRITICAL",
        f"rollout: automatic {a.action} rollback",
        labels={"function": "evaluateExternalDataRollout", "phase": phase},
        kind="automatic_rollback",
        action=a.action,
        trigger=fired[0].name if fired else "",
        triggers=[t.name for t in fired],
        reason=reason,
        configVersion=change.version,
        historyId=change.history_id,
        evidence=[{k: v for k, v in t.evidence.items() if k != "perMinute"} for t in fired],
        alert=True,
    )

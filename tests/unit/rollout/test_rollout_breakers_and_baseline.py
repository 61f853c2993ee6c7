"""Contract section 6: source circuit breakers, and the phase baseline the gradual rules use
where nobody (phase full) or too few are outside the cohort."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from gating.rollout import BreakerState, parse
from rollout_control import breakers, changes
from rollout_control.breakers import PROBES_PER_HALF_OPEN
from rollout_control.evaluator import evaluate
from stores.memory import MemoryStore
from stores.schema import CONFIG_PATH, EVALUATOR_PATH, HISTORY_COLLECTION, breaker_probe_path


def _phase(store: MemoryStore, phase: str, at: datetime, pct: int = 25) -> None:
    changes.set_fields(
        store,
        phase=phase,
        percentage=100 if phase == "full" else pct,
        fallback=phase != "full",
        force=True,
        by="setup",
        reason="test setup",
        now=at,
    )


def _github(agg: Any, now: datetime, minutes: int, tries: int, upstream: int, ok: int = 0) -> None:
    for k in range(1, minutes + 1):
        figures = {"requests": tries, "upstreamFailures": upstream, "successful": ok}
        agg.traffic(now - timedelta(minutes=k), sources={"github": figures})


def _state(store: MemoryStore, now: datetime) -> BreakerState:
    return parse(store.docs[CONFIG_PATH]).breaker("github", now)


def test_a_source_failing_upstream_opens_its_breaker_not_the_kill_switch(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    _github(agg, now, 5, tries=4, upstream=3)  # 20 tries, 15 failed upstream: 75%
    res = evaluate(store, now)
    assert res.action == "none" and len(res.breakers) == 1
    cfg = parse(store.docs[CONFIG_PATH])
    assert cfg.gating_active and cfg.breaker("github", now) is BreakerState.OPEN
    entry = [d for p, d in sorted(store.docs.items()) if p.startswith(HISTORY_COLLECTION)][-1]
    assert entry["action"] == "breaker open" and entry["evidence"]["requests"] == 20
    assert entry["evidence"]["upstreamFailures"] == 15
    assert _state(store, now + timedelta(minutes=5)) is BreakerState.HALF_OPEN


@pytest.mark.parametrize(
    ("tries", "upstream"),
    [(19, 19), (20, 10)],  # too few tries; exactly 50% is not "more than 50%"
)
def test_the_breaker_stays_closed_just_below_its_thresholds(
    store: MemoryStore, agg: Any, now: datetime, tries: int, upstream: int
) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    agg.traffic(
        now - timedelta(minutes=2),
        sources={"github": {"requests": tries, "upstreamFailures": upstream}},
    )
    assert evaluate(store, now).breakers == ()
    assert _state(store, now) is BreakerState.CLOSED


@pytest.mark.parametrize(("users", "opens"), [(4, False), (5, True)])
def test_a_breaker_needs_failed_tries_from_five_distinct_users(
    store: MemoryStore, agg: Any, now: datetime, users: int, opens: bool
) -> None:
    """Contract 6: no single user moves the evaluator. One user's own failing target (their
    website answering 503, 20 calls in 5 minutes) must not switch the source off for all."""
    _phase(store, "premium", now - timedelta(hours=2))
    for k in range(1, 6):
        figures = {"requests": 4, "upstreamFailures": 4}
        agg.traffic(
            now - timedelta(minutes=k), sources={"github": figures}, source_failing_users=users
        )
    moved = evaluate(store, now).breakers
    assert _state(store, now) is (BreakerState.OPEN if opens else BreakerState.CLOSED)
    assert len(moved) == int(opens)
    if opens:
        assert "for 5 distinct users" in moved[0]


def _probes(store: MemoryStore, at: datetime, **outcomes: int) -> None:
    """Probe calls of the half-open period that GitHub's breaker is in at ``at``."""
    b = parse(store.docs[CONFIG_PATH]).breakers["github"]
    path = breaker_probe_path("github", b.half_open_from or at)
    doc = store.docs.setdefault(path, {})
    for name, n in outcomes.items():
        doc[name] = doc.get(name, 0) + n


def _opened(store: MemoryStore, agg: Any, now: datetime) -> None:
    """Phase premium, GitHub failing every try for 5 minutes: the evaluator opens its breaker."""
    _phase(store, "premium", now - timedelta(hours=2))
    _github(agg, now, 5, tries=4, upstream=4)
    evaluate(store, now)


def test_half_open_probes_close_the_breaker_or_open_it_again(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _opened(store, agg, now)
    later = now + timedelta(minutes=6)
    _probes(store, later, calls=3, failedUpstream=3)
    assert "failed upstream (3 of 3)" in evaluate(store, later).breakers[0]
    assert _state(store, later) is BreakerState.OPEN
    healed = later + timedelta(minutes=6)
    _probes(store, healed, calls=3, answered=3)
    assert "back on" in evaluate(store, healed).breakers[0]
    assert _state(store, healed) is BreakerState.CLOSED


def test_only_probe_calls_judge_a_half_open_breaker_not_the_minutes_around_it(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _opened(store, agg, now)
    later = now + timedelta(minutes=6)
    # tries by instances still on an older config, in the minute the breaker turned half-open
    # and the one after: they are not probes
    _github(agg, later, 2, tries=4, upstream=4)
    assert evaluate(store, later).breakers == ()  # no probe outcome yet: nothing to judge
    _probes(store, later, calls=3, answered=3)
    assert "probe calls succeeded (3 of 3): back on" in evaluate(store, later).breakers[0]
    assert _state(store, later) is BreakerState.CLOSED


@pytest.mark.parametrize(
    ("failed", "answered", "to"),
    [(0, 3, "closed"), (1, 2, "open"), (0, 1, "half_open"), (0, 2, "half_open")],
)
def test_a_half_open_breaker_is_judged_on_all_its_probes_and_closes_when_all_succeed(
    store: MemoryStore, agg: Any, now: datetime, failed: int, answered: int, to: str
) -> None:
    """Contract 6: switched back on when the probe calls succeed. One answer while the other
    tickets are out is not enough to close it (a source failing 60% of its calls would close
    on the first lucky probe, and flap)."""
    _opened(store, agg, now)
    later = now + timedelta(minutes=6)
    _probes(store, later, calls=PROBES_PER_HALF_OPEN, failedUpstream=failed, answered=answered)
    moved = evaluate(store, later).breakers
    assert parse(store.docs[CONFIG_PATH]).breaker("github", later).value == to
    assert len(moved) == (0 if to == "half_open" else 1)


def test_tickets_drawn_without_outcomes_start_a_new_half_open_period_after_a_wait(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _opened(store, agg, now)
    half_open = parse(store.docs[CONFIG_PATH]).breakers["github"].until
    assert half_open is not None
    _probes(store, half_open, calls=PROBES_PER_HALF_OPEN)  # calls that never reported
    assert evaluate(store, half_open + timedelta(minutes=4)).breakers == ()
    moved = evaluate(store, half_open + timedelta(minutes=5)).breakers
    assert "0 outcome(s) recorded" in moved[0]
    again = parse(store.docs[CONFIG_PATH]).breakers["github"]
    assert again.state is BreakerState.OPEN and again.until is not None
    assert again.until == half_open + timedelta(minutes=10)  # new period, new probe document
    assert breaker_probe_path("github", again.until) not in store.docs


def test_tickets_with_some_outcomes_missing_start_a_new_half_open_period_after_a_wait(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    """Two probes answered, the third never reported: not all probes succeeded, so the breaker
    does not close; after the wait a new half-open period probes again."""
    _opened(store, agg, now)
    half_open = parse(store.docs[CONFIG_PATH]).breakers["github"].until
    assert half_open is not None
    _probes(store, half_open, calls=PROBES_PER_HALF_OPEN, answered=2)
    assert evaluate(store, half_open + timedelta(minutes=4)).breakers == ()
    moved = evaluate(store, half_open + timedelta(minutes=5)).breakers
    assert "2 outcome(s) recorded in 5 minutes (2 answered, 0 failed upstream)" in moved[0]
    assert parse(store.docs[CONFIG_PATH]).breakers["github"].state is BreakerState.OPEN


def test_the_operator_switch_is_a_recorded_change(store: MemoryStore, now: datetime) -> None:
    breakers.set_source(store, "web", False, by="ops", reason="provider bill", now=now)
    assert not parse(store.docs[CONFIG_PATH]).source_enabled("web")
    with pytest.raises(changes.InvalidChange):
        breakers.set_source(store, "myspace", False, by="ops", reason="x", now=now)
    # --expect-version is honoured like every other change's (it was accepted and ignored)
    version = store.docs[CONFIG_PATH]["version"]
    with pytest.raises(changes.Conflict):
        breakers.set_source(
            store, "web", True, by="ops", reason="x", now=now, expected_version=version + 98
        )
    assert store.docs[CONFIG_PATH]["version"] == version


def _seed_gated_conversion(agg: Any, at: datetime, exposures: int, conversions: int) -> None:
    agg.traffic(at, cohort_in={"previews": exposures, "conversions": conversions})


@pytest.mark.parametrize(("conversions", "action"), [(9, "gradual"), (11, "none")])
def test_in_phase_full_the_conversion_baseline_comes_from_the_premium_phase(
    store: MemoryStore, agg: Any, now: datetime, conversions: int, action: str
) -> None:
    premium_since = now - timedelta(days=3)
    _phase(store, "premium", premium_since)
    evaluate(store, premium_since + timedelta(minutes=1))  # records the premium baseline
    _seed_gated_conversion(agg, premium_since + timedelta(hours=5), 200, 40)  # 20% gated
    _phase(store, "full", now - timedelta(hours=2))
    for k in range(1, 31):  # the cohort's last 30 minutes: 100 exposures, 9 or 11 conversions
        agg.traffic(now - timedelta(minutes=k), cohort_in={"previews": 3 if k <= 10 else 4})
    agg.traffic(now - timedelta(minutes=2), cohort_in={"conversions": conversions})
    res = evaluate(store, now)
    assert res.baseline["conversionRate"] == 0.2 and "premium" in res.baseline["conversionBasis"]
    assert res.action == action  # 9% is under half of 20%; 11% is not
    assert store.docs[EVALUATOR_PATH]["lastRunAt"] == now


def test_the_latency_baseline_is_the_p95_of_the_week_before(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    for h in range(1, 60):
        agg.traffic(now - timedelta(hours=2, minutes=h), requests=1, lat_ms=400.0)
    _phase(store, "full", now - timedelta(hours=2))
    for k in range(1, 31):
        agg.traffic(now - timedelta(minutes=k), cohort_in={"requests": 2, "lat_ms": 600.0})
    res = evaluate(store, now)
    assert res.baseline["p95Calls"] == 59 and res.action == "gradual"


def test_a_breaker_change_does_not_restart_the_phase_window(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _phase(store, "premium", now - timedelta(hours=30))
    _github(agg, now - timedelta(hours=1), 5, tries=4, upstream=4)
    evaluate(store, now - timedelta(hours=1))  # opens GitHub's breaker: a config change
    assert parse(store.docs[CONFIG_PATH]).phaseSince == now - timedelta(hours=30)
    with pytest.raises(changes.AdvanceBlocked) as blocked:
        changes.advance(store, by="ops", reason="next phase", now=now)
    (window,) = [c for c in blocked.value.checks if c.name == "window elapsed"]
    assert window.numbers["elapsedHours"] == 30.0


def test_answers_from_the_cache_are_no_tries_of_the_source(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    """Contract 6 judges a source's tries: every real GitHub fetch failing upstream opens its
    breaker, however many calls the cache answered meanwhile (they counted as successes)."""
    _phase(store, "premium", now - timedelta(hours=2))
    for k in range(1, 6):
        figures = {"requests": 12, "cacheHits": 8, "successful": 8, "upstreamFailures": 4}
        agg.traffic(now - timedelta(minutes=k), sources={"github": figures})
    assert len(evaluate(store, now).breakers) == 1
    assert _state(store, now) is BreakerState.OPEN
    entry = [d for p, d in sorted(store.docs.items()) if p.startswith(HISTORY_COLLECTION)][-1]
    evidence = entry["evidence"]
    assert (evidence["requests"], evidence["upstreamFailures"], evidence["cacheHits"]) == (
        20,
        20,
        40,
    )


class _Lines:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, severity: str, message: str, **fields: Any) -> None:
        self.lines.append((severity, message, fields))


def test_one_outage_is_one_warning_however_often_its_probes_fail(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    _github(agg, now, 5, tries=4, upstream=4)
    logs = _Lines()
    evaluate(store, now, log=logs)
    at = now
    for _ in range(3):  # three half-open periods whose probes fail: the same incident
        at += timedelta(minutes=6)
        _probes(store, at, calls=3, failedUpstream=3)
        evaluate(store, at, log=logs)
    at += timedelta(minutes=6)
    _probes(store, at, calls=3, answered=3)
    evaluate(store, at, log=logs)
    moves = [
        (s, f["state"], f["alert"]) for s, _, f in logs.lines if f.get("kind") == "source_breaker"
    ]
    assert moves == [
        ("WARNING", "open", True),
        ("INFO", "open", False),
        ("INFO", "open", False),
        ("INFO", "open", False),
        ("INFO", "closed", False),
    ]


class _Overlapped:
    """The store as one evaluator run sees it while a second run, started just after its
    config read, completes in between (a scheduler retry, or `rollout.py evaluate` beside the
    scheduled run)."""

    def __init__(self, inner: MemoryStore, other_run: Any) -> None:
        self.inner = inner
        self.other_run = other_run

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get_many(self, paths: Any, fields: Any = None) -> Any:
        out = self.inner.get_many(paths, fields)
        if CONFIG_PATH in paths and self.other_run is not None:
            run, self.other_run = self.other_run, None
            run()
        return out


def test_two_overlapping_runs_open_a_breaker_once(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _phase(store, "premium", now - timedelta(hours=2))
    _github(agg, now, 5, tries=4, upstream=4)
    logs = _Lines()
    later = now + timedelta(seconds=5)
    overlapped = _Overlapped(store, lambda: evaluate(store, now, log=logs))
    assert evaluate(overlapped, later, log=logs).breakers == ()
    opened = [s for s, _, f in logs.lines if f.get("kind") == "source_breaker"]
    assert opened == ["WARNING"]
    entries = [d for p, d in store.docs.items() if p.startswith(HISTORY_COLLECTION + "/")]
    assert [d["action"] for d in entries if d["action"].startswith("breaker")] == ["breaker open"]
    assert parse(store.docs[CONFIG_PATH]).breakers["github"].until == now + timedelta(minutes=5)


def _closed_after_an_outage(store: MemoryStore, agg: Any, now: datetime, logs: _Lines) -> datetime:
    """GitHub's breaker opened at ``now`` and closed by its probes 6 minutes later."""
    _phase(store, "premium", now - timedelta(hours=2))
    _github(agg, now, 5, tries=4, upstream=4)
    evaluate(store, now, log=logs)
    closed = now + timedelta(minutes=6)
    _probes(store, closed, calls=3, answered=3)
    evaluate(store, closed, log=logs)
    assert _state(store, closed) is BreakerState.CLOSED
    return closed


def _moves(logs: _Lines) -> list[tuple[str, str, bool]]:
    return [
        (s, f["state"], f["alert"]) for s, _, f in logs.lines if f.get("kind") == "source_breaker"
    ]


@pytest.mark.parametrize(("after", "alerted"), [(30, False), (31, True)])
def test_an_opening_within_30_minutes_of_closing_is_the_same_incident(
    store: MemoryStore, agg: Any, now: datetime, after: int, alerted: bool
) -> None:
    """Contract 6: WARNING at most once per incident. A source that fails again soon after
    its probes closed the breaker is the same outage flapping: the reopening is INFO."""
    logs = _Lines()
    closed = _closed_after_an_outage(store, agg, now, logs)
    again = closed + timedelta(minutes=after)
    _github(agg, again, 5, tries=4, upstream=4)
    moved = evaluate(store, again, log=logs).breakers
    assert _state(store, again) is BreakerState.OPEN
    assert ("same incident" in moved[0]) is not alerted
    level = "WARNING" if alerted else "INFO"
    assert _moves(logs) == [
        ("WARNING", "open", True),
        ("INFO", "closed", False),
        (level, "open", alerted),
    ]

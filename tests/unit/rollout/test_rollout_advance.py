"""``advance``: off -> beta needs nothing; later phases need their success metrics to have held
over the monitoring window (beta 48 h, premium 72 h); ``force`` overrides and is recorded."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from gating.rollout import CONFIG_PATH, HISTORY_COLLECTION, parse
from rollout_control import changes, health
from rollout_control.changes import AdvanceBlocked, InvalidChange
from stores.base import Write
from stores.memory import MemoryStore
from stores.schema import usage_event_path
from tests.unit.rollout.conftest import enter_phase

HEALTHY_BETA: dict[str, Any] = {
    "requests": 100,
    "errors": 0,
    "failed": 5,
    "lat_ms": 800.0,
    "cohort_in": {"requests": 60, "previews": 40, "gateShown": 10, "conversions": 6},
}


def _enter(store: MemoryStore, phase: str, at: datetime) -> None:
    enter_phase(store, phase, at)


def _hours(agg: Any, now: datetime, n: int, **kw: Any) -> None:
    for h in range(n + 1):
        agg.traffic(now - timedelta(hours=h, minutes=1), **kw)


def _failing(exc: AdvanceBlocked) -> set[str]:
    return {c.name for c in exc.checks}


def test_off_to_beta_needs_no_metrics(store: MemoryStore, now: datetime) -> None:
    res = changes.advance(store, by="a", reason="go", now=now)
    assert res.after["phase"] == "beta" and res.evidence is None


def test_beta_to_premium_when_every_metric_held(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _enter(store, "beta", now - timedelta(hours=49))
    _hours(agg, now, 48, **HEALTHY_BETA)
    res = changes.advance(store, by="a", reason="beta held", now=now)
    cfg = parse(store.docs[CONFIG_PATH])
    assert (cfg.phase.value, cfg.rolloutPercentage, cfg.fallbackEnabled) == ("premium", 25, True)
    assert res.action == "advance" and res.evidence is not None
    assert {c["status"] for c in res.evidence["checks"]} == {"ok"}


def test_advance_waits_for_the_whole_window(store: MemoryStore, agg: Any, now: datetime) -> None:
    _enter(store, "beta", now - timedelta(hours=47))
    _hours(agg, now, 47, **HEALTHY_BETA)
    with pytest.raises(AdvanceBlocked) as exc:
        changes.advance(store, by="a", reason="r", now=now)
    assert _failing(exc.value) == {"window elapsed"}
    assert "failing: window elapsed" in str(exc.value)


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"errors": 1}, "critical errors"),
        ({"lat_ms": 2600.0}, "p95 latency"),
        ({"failed": 11}, "completion"),  # 89 of 100 completed
        (  # exactly 10 % is not "> 10 %"
            {"cohort_in": {"requests": 60, "previews": 40, "gateShown": 10, "conversions": 5}},
            "preview->premium conversion",
        ),
        ({"extra": {"unauthorizedFull": 1}}, "unauthorized full access"),
    ],
)
def test_each_beta_metric_blocks_on_its_own(
    store: MemoryStore, agg: Any, now: datetime, change: dict[str, Any], failing: str
) -> None:
    _enter(store, "beta", now - timedelta(hours=49))
    _hours(agg, now, 48, **{**HEALTHY_BETA, **change})
    with pytest.raises(AdvanceBlocked) as exc:
        changes.advance(store, by="a", reason="r", now=now)
    assert _failing(exc.value) == {failing}


def test_beta_thresholds_just_inside_pass(store: MemoryStore, agg: Any, now: datetime) -> None:
    _enter(store, "beta", now - timedelta(hours=49))
    # completion 91 %, conversion just above 10 %, p95 just under 2.5 s (bucket middle 2.37 s)
    agg.traffic(
        now - timedelta(hours=2),
        requests=100,
        failed=9,
        lat_ms=2400.0,
        cohort_in={"requests": 100, "previews": 90, "gateShown": 9, "conversions": 10},
    )
    report = health.phase_health(
        store, parse(store.docs[CONFIG_PATH]), store.docs[CONFIG_PATH]["phaseSince"], now
    )
    assert report.ok, [c for c in report.checks if not c.ok]


def test_no_traffic_is_not_success(store: MemoryStore, now: datetime) -> None:
    _enter(store, "beta", now - timedelta(hours=49))
    with pytest.raises(AdvanceBlocked) as exc:
        changes.advance(store, by="a", reason="r", now=now)
    assert _failing(exc.value) == {"p95 latency", "completion", "preview->premium conversion"}
    assert {c.status for c in exc.value.checks} == {"no data"}


def test_force_overrides_and_is_recorded(store: MemoryStore, now: datetime) -> None:
    _enter(store, "beta", now - timedelta(hours=1))
    res = changes.advance(store, by="lead", reason="demo", now=now, force=True)
    assert res.after["phase"] == "premium" and res.action == "advance (forced)"
    entry = store.docs[f"{HISTORY_COLLECTION}/{res.history_id}"]
    assert entry["forced"] is True and entry["reason"] == "demo"
    statuses = {c["name"]: c["status"] for c in entry["evidence"]["checks"]}
    assert statuses["window elapsed"] == "wait" and statuses["completion"] == "no data"


def _premium_hours(agg: Any, now: datetime, n: int, lat: float = 800.0) -> None:
    for h in range(n + 1):
        at = now - timedelta(hours=h, minutes=1)
        agg.traffic(at, requests=40, lat_ms=lat, extra={"gateShown": 3})
        agg.store.commit(
            [Write(usage_event_path(f"u{h}", "e1"), {"uid": f"u{h}", "tier": "free", "at": at})]
        )


def test_premium_to_full_when_latency_stable_and_access_held(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _enter(store, "premium", now - timedelta(hours=73))
    _premium_hours(agg, now, 72)
    res = changes.advance(store, by="a", reason="premium held", now=now)
    cfg = parse(store.docs[CONFIG_PATH])
    assert (cfg.phase.value, cfg.rolloutPercentage, cfg.fallbackEnabled) == ("full", 100, False)
    assert res.action == "advance"


def test_one_slow_hour_is_unstable_latency(store: MemoryStore, agg: Any, now: datetime) -> None:
    _enter(store, "premium", now - timedelta(hours=73))
    _premium_hours(agg, now, 72)
    # one hour whose p95 sits one 25 % bucket above the rest (> 20 % above the median)
    agg.traffic(now - timedelta(hours=10, minutes=30), requests=40, lat_ms=1100.0)
    with pytest.raises(AdvanceBlocked) as exc:
        changes.advance(store, by="a", reason="r", now=now)
    assert _failing(exc.value) == {"stable latency"}


def test_quiet_hours_do_not_count_for_stability(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _enter(store, "premium", now - timedelta(hours=73))
    _premium_hours(agg, now, 72)
    # a slow hour with fewer than MIN_CALLS_PER_HOUR calls is skipped
    agg.traffic(now - timedelta(hours=80), requests=0)
    agg.traffic(now - timedelta(hours=72, minutes=-30), requests=1, lat_ms=60000.0)
    report = health.phase_health(
        store, parse(store.docs[CONFIG_PATH]), store.docs[CONFIG_PATH]["phaseSince"], now
    )
    assert report.ok


def test_premium_access_control_must_hold_100_percent(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _enter(store, "premium", now - timedelta(hours=73))
    _premium_hours(agg, now, 72)
    agg.traffic(now - timedelta(hours=5), extra={"unauthorizedFull": 1})
    with pytest.raises(AdvanceBlocked) as exc:
        changes.advance(store, by="a", reason="r", now=now)
    assert _failing(exc.value) == {"premium access control"}


def test_nothing_after_full(store: MemoryStore, now: datetime) -> None:
    _enter(store, "full", now)
    with pytest.raises(InvalidChange, match="already at full"):
        changes.advance(store, by="a", reason="r", now=now, force=True)


def test_advance_refused_while_the_kill_switch_is_on(store: MemoryStore, now: datetime) -> None:
    changes.advance(store, by="a", reason="beta", now=now)
    changes.rollback_immediate(store, by="a", reason="incident", now=now)
    with pytest.raises(InvalidChange, match="run `restore` first"):
        changes.advance(store, by="a", reason="r", now=now)

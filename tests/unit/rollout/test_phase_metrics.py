"""The plan's success metrics that ``status``, ``report phase`` and ``advance`` check beyond
beta's: usage data collection and support tickets (premium), free-user adoption, conversion and
revenue (full). A metric the system cannot measure is shown as "not measured", never blocking."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

import pytest

from gating.rollout import CONFIG_PATH, parse
from rollout_control import changes, health
from stores.base import Write
from stores.memory import MemoryStore
from stores.schema import conversion_path, usage_event_path
from tests.support.scripts import load_script
from tests.unit.rollout.conftest import enter_phase


def _script(name: str) -> ModuleType:
    return load_script(name, f"{name}_cli_m")


def _enter(store: MemoryStore, phase: str, at: datetime) -> None:
    enter_phase(store, phase, at, by="op")


def _hours(agg: Any, now: datetime, n: int) -> None:
    for h in range(n + 1):
        agg.traffic(now - timedelta(hours=h, minutes=1), requests=40, extra={"gateShown": 3})


def _event(store: MemoryStore, uid: str, kind: str, at: datetime, tier: str = "free") -> None:
    doc = {"uid": uid, "type": kind, "tier": tier, "at": at}
    store.commit([Write(usage_event_path(uid, f"{kind}-{at:%H%M%S}"), doc, merge=False)])


def _users(store: MemoryStore, at: datetime, free: int, engaged: int, converted: int) -> None:
    """``free`` free users called; the first ``engaged`` had a preview; ``converted`` of those
    turned premium after it."""
    for i in range(free):
        _event(store, f"f{i}", "preview" if i < engaged else "full", at)
    for i in range(converted):
        doc = {"uid": f"f{i}", "at": at + timedelta(hours=1), "precededByFunnel": True}
        store.commit([Write(conversion_path(f"f{i}", "c1"), doc, merge=False)])


def _checks(store: MemoryStore, now: datetime) -> dict[str, health.Check]:
    cfg = parse(store.docs[CONFIG_PATH])
    report = health.phase_health(store, cfg, cfg.phaseSince, now)
    return {c.name: c for c in report.checks}


# -- premium -----------------------------------------------------------------------------------


def test_premium_needs_usage_data_collected(store: MemoryStore, agg: Any, now: datetime) -> None:
    _enter(store, "premium", now - timedelta(hours=73))
    _hours(agg, now, 72)
    with pytest.raises(changes.AdvanceBlocked) as exc:
        changes.advance(store, by="op", reason="r", now=now)
    assert [c.name for c in exc.value.checks] == ["usage data collection"]
    assert exc.value.checks[0].value == "no usage events in the window"
    _event(store, "p1", "full", now - timedelta(hours=2), tier="premium")
    checks = _checks(store, now)
    assert checks["usage data collection"].status == "ok"
    tickets = checks["support tickets"]
    assert (tickets.status, tickets.ok) == ("not measured", True)
    assert changes.advance(store, by="op", reason="premium held", now=now).after["phase"] == "full"


def test_premium_usage_tracking_off_fails(store: MemoryStore, agg: Any, now: datetime) -> None:
    _enter(store, "premium", now - timedelta(hours=73))
    _hours(agg, now, 72)
    _event(store, "p1", "full", now - timedelta(hours=2), tier="premium")
    changes.rollback_partial(store, "usageTracking", by="op", reason="r", now=now)
    check = _checks(store, now)["usage data collection"]
    assert (check.status, check.value) == ("FAIL", "usageTracking off")


def test_usage_collection_without_calls_is_no_data() -> None:
    check = health.usage_check({}, health.Usage(True, 1))
    assert check.status == "no data" and not check.ok


# -- full --------------------------------------------------------------------------------------


def test_full_checks_adoption_and_conversion(store: MemoryStore, agg: Any, now: datetime) -> None:
    _enter(store, "full", now - timedelta(days=8))
    _hours(agg, now, 7 * 24)
    _users(store, now - timedelta(days=2), free=100, engaged=45, converted=2)
    checks = _checks(store, now)
    adoption, conversion = checks["free-user adoption"], checks["preview->premium conversion"]
    assert (adoption.value, adoption.status) == ("45.0% (45/100)", "FAIL")
    assert (conversion.value, conversion.status) == ("4.4% (2/45)", "FAIL")
    assert "free callers" in adoption.threshold
    assert "within 7 d of preview/gate" in conversion.threshold
    revenue = checks["premium subscriptions increase"]
    assert revenue.status == "not measured" and revenue.ok
    assert {"stable latency", "premium access control", "usage data collection"} <= set(checks)


def test_full_checks_hold(store: MemoryStore, agg: Any, now: datetime) -> None:
    _enter(store, "full", now - timedelta(days=8))
    _hours(agg, now, 7 * 24)
    _users(store, now - timedelta(days=2), free=100, engaged=70, converted=15)
    report = health.phase_health(store, parse(store.docs[CONFIG_PATH]), None, now)
    assert report.ok, [(c.name, c.status) for c in report.checks if not c.ok]


def test_full_without_free_users_is_no_data(store: MemoryStore, agg: Any, now: datetime) -> None:
    _enter(store, "full", now - timedelta(days=8))
    _hours(agg, now, 7 * 24)
    checks = _checks(store, now)
    assert checks["free-user adoption"].status == "no data"
    assert checks["preview->premium conversion"].status == "no data"


def test_status_and_report_show_the_full_checks(
    store: MemoryStore,
    agg: Any,
    now: datetime,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _enter(store, "full", now - timedelta(days=8))
    _hours(agg, now, 7 * 24)
    _users(store, now - timedelta(days=2), free=100, engaged=45, converted=2)
    rollout = _script("rollout")
    monkeypatch.setattr(rollout.cli, "make_store", lambda project: store)
    assert rollout.main(["status", "--at", now.isoformat()]) == 0
    out = capsys.readouterr().out
    for row in ("free-user adoption", "45.0% (45/100)", "FAIL", "premium subscriptions increase"):
        assert row in out
    assert "full is the last phase." in out
    report = _script("report")
    verdict = report.phase_verdict(store, now)
    statuses = {c["name"]: c["status"] for c in verdict["checks"]}
    assert statuses["free-user adoption"] == "FAIL"
    assert statuses["preview->premium conversion"] == "FAIL"
    assert statuses["premium subscriptions increase"] == "not measured"

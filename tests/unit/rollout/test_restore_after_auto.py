"""``restore`` after the evaluator's gradual rollback puts the rollout back where the operator
left it (phase, percentage, fallback), names the steps it undid, and refuses when the history
cannot tell them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from gating.rollout import CONFIG_PATH, HISTORY_COLLECTION, parse
from rollout_control import changes
from rollout_control.evaluator import evaluate
from stores.errors import StoreError
from stores.memory import MemoryStore
from tests.support.scripts import load_script
from tests.unit.rollout.conftest import enter_phase

BAD_IN = {"requests": 2, "lat_ms": 3000.0}
OUT = {"requests": 2, "lat_ms": 300.0}


def _guard(agg: Any, end: datetime, minutes: int = 31) -> None:
    for k in range(1, minutes + 1):
        agg.traffic(end - timedelta(minutes=k), cohort_in=BAD_IN, cohort_out=OUT)


def _enter(store: MemoryStore, phase: str, at: datetime) -> None:
    enter_phase(store, phase, at, by="op")


def _shape(store: MemoryStore) -> tuple[str, int, bool]:
    cfg = parse(store.docs[CONFIG_PATH])
    return cfg.phase.value, cfg.rolloutPercentage, cfg.fallbackEnabled


def _last_entry(store: MemoryStore) -> dict[str, Any]:
    rows = [d for p, d in store.docs.items() if p.startswith(HISTORY_COLLECTION + "/")]
    return max(rows, key=lambda d: d["version"])


def test_restore_undoes_one_automatic_step(store: MemoryStore, agg: Any, now: datetime) -> None:
    _enter(store, "premium", now - timedelta(days=5))
    _guard(agg, now)
    assert evaluate(store, now).applied
    assert _shape(store) == ("premium", 12, True)
    res = changes.restore(store, by="op", reason="fixed", now=now + timedelta(minutes=5))
    assert _shape(store) == ("premium", 25, True)
    assert "premium 12% (fallback on) -> premium 25% (fallback on)" in res.summary
    assert "undoing 1 automatic gradual step (v2)" in res.summary
    entry = _last_entry(store)
    assert entry["action"] == "restore"
    assert entry["evidence"]["restored"] == {
        "phase": "premium",
        "rolloutPercentage": 25,
        "fallbackEnabled": True,
    }
    assert [u["version"] for u in entry["evidence"]["undid"]] == [2]


def test_restore_undoes_every_step_since_the_operator_change(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _enter(store, "full", now - timedelta(days=8))
    t = now
    for expected in (("premium", 50, True), ("premium", 25, True), ("premium", 12, True)):
        _guard(agg, t)
        assert evaluate(store, t).applied
        assert _shape(store) == expected
        t += timedelta(minutes=32)
    changes.rollback_immediate(store, by="op", reason="r", now=t)  # the operator's kill switch
    changes.restore(store, by="op", reason="fixed", now=t + timedelta(minutes=1))
    # the kill switch was the operator's own change: the steps before it are not undone
    assert _shape(store) == ("premium", 12, True)


def test_restore_after_steps_and_breakers_goes_back_to_full(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _enter(store, "full", now - timedelta(days=8))
    t = now
    for _ in range(2):
        _guard(agg, t)
        assert evaluate(store, t).applied
        t += timedelta(minutes=32)
    _breaker_entry(store, t)
    assert _shape(store) == ("premium", 25, True)
    res = changes.restore(store, by="op", reason="fixed", now=t + timedelta(minutes=1))
    assert _shape(store) == ("full", 100, False)
    assert "undoing 2 automatic gradual steps (v2, v3)" in res.summary
    cfg = parse(store.docs[CONFIG_PATH])
    assert cfg.components.premiumGating and cfg.breakers  # the breaker is left as it is


def _breaker_entry(store: MemoryStore, at: datetime) -> None:
    """An automatic entry that is not a gradual step (a source breaker opening)."""

    def mutate(doc: dict[str, Any], _cfg: Any) -> str:
        doc["breakers"] = {"github": {"state": "open", "since": at, "until": at}}
        return "breaker github open"

    changes.apply_change(store, "breaker open", mutate, by="evaluator", reason="r", now=at)


def test_restore_without_automatic_steps_only_turns_components_on(
    store: MemoryStore, now: datetime
) -> None:
    _enter(store, "premium", now - timedelta(days=1))
    changes.rollback_gradual(store, by="op", reason="slow", now=now)  # the operator's own step
    changes.rollback_partial(store, "rateLimiting", by="op", reason="r", now=now)
    res = changes.restore(store, by="op", reason="fixed", now=now + timedelta(seconds=1))
    assert _shape(store) == ("premium", 12, True)
    assert res.evidence is None and res.summary.startswith("restore: premiumGating")


def test_restore_of_one_component_leaves_the_steps(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _enter(store, "premium", now - timedelta(days=5))
    _guard(agg, now)
    assert evaluate(store, now).applied
    with pytest.raises(changes.NoChange):
        changes.restore(store, "premiumGating", by="op", reason="r", now=now)
    assert _shape(store) == ("premium", 12, True)


def test_restore_refuses_when_the_history_does_not_add_up(
    store: MemoryStore, agg: Any, now: datetime
) -> None:
    _enter(store, "premium", now - timedelta(days=5))
    _guard(agg, now)
    assert evaluate(store, now).applied
    path = max(p for p in store.docs if p.startswith(HISTORY_COLLECTION + "/"))
    store.docs[path]["before"] = None  # a step whose starting point is lost
    with pytest.raises(changes.Refused, match=r"`set --phase PHASE --percentage N"):
        changes.restore(store, by="op", reason="r", now=now)
    assert _shape(store) == ("premium", 12, True)


def test_restore_refuses_when_the_history_cannot_be_read(
    store: MemoryStore, agg: Any, now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    _enter(store, "premium", now - timedelta(days=5))
    _guard(agg, now)
    assert evaluate(store, now).applied

    def broken(*_a: Any, **_k: Any) -> Any:
        raise StoreError("down")

    monkeypatch.setattr(store, "query", broken)
    with pytest.raises(changes.Refused, match=r"cannot be read.*`set --phase"):
        changes.restore(store, by="op", reason="r", now=now)
    assert _shape(store) == ("premium", 12, True)


def test_cli_restore_after_an_automatic_step(
    store: MemoryStore,
    agg: Any,
    now: datetime,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cli_mod = load_script("rollout", "rollout_cli_r")
    monkeypatch.setattr(cli_mod.cli, "make_store", lambda project: store)
    at = datetime.now(now.tzinfo) - timedelta(hours=1)
    _enter(store, "premium", at - timedelta(days=5))
    _guard(agg, at)
    assert evaluate(store, at).applied
    assert cli_mod.main(["restore", "--reason", "fixed"]) == 0
    out = capsys.readouterr().out
    assert "premium 12% (fallback on) -> premium 25% (fallback on)" in out
    assert _shape(store) == ("premium", 25, True)

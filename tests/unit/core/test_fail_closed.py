"""Paid access fails closed (contract sections 1, 3 and 4; issue 13): partial outages of the
store, a config that never parsed, and the configured grace days of a ``past_due`` user.

The store-down test elsewhere uses a store that fails on the very first read; these use stores
that fail on one operation only, so the code path after a successful read is exercised too.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest

from analytics.metrics import get
from common.errors import PermissionDenied, Unauthenticated, Unavailable
from common.settings import load_settings
from gating.config_source import FAIL_CLOSED, RETRY_AFTER, ConfigSource
from gating.rollout import CONFIG_PATH, Phase
from stores.errors import StoreError
from stores.memory import MemoryStore
from stores.schema import RATE_LIMITS
from tests.support.aggregates import counter, summed
from tests.support.clock import FakeClock
from tests.support.doubles import StaticEngine, seed_user, set_config
from usecases import enrich
from usecases.app import App
from usecases.context import Caller

RATE_PREFIX = f"{RATE_LIMITS}/"


class IncrementFails(MemoryStore):
    """Reads and commits work; only the limiter's atomic increment fails."""

    def increment(self, path: str, field_name: str, by: int, extra: Mapping[str, Any]) -> int:
        if path.startswith(RATE_PREFIX):
            raise StoreError("increment timed out")
        return super().increment(path, field_name, by, extra)


class ConfigReadFails(MemoryStore):
    """Every document reads except the rollout config."""

    def get_many(self, paths: Any, fields: Any = None) -> dict[str, dict[str, Any] | None]:
        if CONFIG_PATH in paths:
            raise StoreError("config read failed")
        return super().get_many(paths, fields)


def _app(store: MemoryStore, engine: StaticEngine, env: Mapping[str, str] | None = None) -> App:
    return App(load_settings(dict(env or {})), store, engine, now=FakeClock(), rng=lambda n: 0)


def test_rate_paths_are_where_the_limiter_increments() -> None:
    # Guards the fakes above: if the limiter's documents moved, IncrementFails would fail nothing.
    store, engine = MemoryStore(), StaticEngine()
    seed_user(store, "pat", premium=True)
    set_config(store)
    enrich.run(_app(store, engine), Caller("pat"), {"cvId": "cv-pat"})
    assert any(p.startswith(RATE_PREFIX) for p in store.docs)


@pytest.mark.parametrize("premium", [False, True])
def test_a_failing_increment_refuses_the_call_instead_of_serving_it_unlimited(
    premium: bool,
) -> None:
    store, engine = IncrementFails(), StaticEngine()
    seed_user(store, "u", premium=premium)
    set_config(store)
    with pytest.raises(Unavailable):
        enrich.run(_app(store, engine), Caller("u"), {"cvId": "cv-u", "mode": "preview"})
    assert engine.calls == []  # nothing enriched without a unit of the limit
    assert "cvs/cv-u/externalData/latest" not in store.docs


def test_a_config_that_never_parsed_gates_everyone() -> None:
    store, engine = MemoryStore(), StaticEngine()
    seed_user(store, "alice")
    seed_user(store, "pat", premium=True)
    store.docs[CONFIG_PATH] = {"phase": "sideways", "version": 1}
    app = _app(store, engine)
    with pytest.raises(PermissionDenied):
        enrich.run(app, Caller("alice"), {"cvId": "cv-alice"})
    preview = enrich.run(app, Caller("alice"), {"cvId": "cv-alice", "mode": "preview"})
    assert preview["access"] == "preview" and preview["enrichedData"]["locked"] is True
    assert enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})["access"] == "full"
    assert app.config.for_recording() == FAIL_CLOSED


def test_the_fail_closed_config_is_full_gating_without_fallback() -> None:
    assert FAIL_CLOSED.phase is Phase.FULL and FAIL_CLOSED.gating_active
    assert FAIL_CLOSED.fallbackEnabled is False and FAIL_CLOSED.components.rateLimiting


def test_an_unparsable_config_keeps_the_last_good_one() -> None:
    store, engine = MemoryStore(), StaticEngine()
    seed_user(store, "alice")
    set_config(store, phase="off")
    clock = FakeClock()
    app = App(load_settings({}), store, engine, now=clock, rng=lambda n: 0)
    assert enrich.run(app, Caller("alice"), {"cvId": "cv-alice"})["access"] == "full"
    store.docs[CONFIG_PATH] = {"phase": "sideways", "version": 2}
    clock.advance(seconds=app.settings.config_ttl_seconds + 1)
    assert enrich.run(app, Caller("alice"), {"cvId": "cv-alice"})["access"] == "full"


def _with_good_copy(store: MemoryStore, clock: FakeClock) -> ConfigSource:
    """A config source over ``store`` that has read a good config (rolloutPercentage 7)."""
    store.docs[CONFIG_PATH] = {"phase": "beta", "rolloutPercentage": 7, "version": 3}
    source = ConfigSource(store, timedelta(seconds=10), clock)
    assert source.current().rolloutPercentage == 7
    return source


def test_an_unreadable_config_with_no_good_copy_is_unavailable() -> None:
    clock = FakeClock()
    store = ConfigReadFails()
    source = ConfigSource(store, timedelta(seconds=10), clock)
    with pytest.raises(Unavailable):
        source.current()
    # Once a good copy was seen, an outage serves it rather than failing.
    ok = MemoryStore()
    good = _with_good_copy(ok, clock)
    ok.fail = True
    clock.advance(seconds=11)
    assert good.current().rolloutPercentage == 7


class CountsConfigReads(MemoryStore):
    """Counts the config reads tried; one may be held until ``go`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.config_reads = 0
        self.hold = False
        self.holding = threading.Event()
        self.go = threading.Event()

    def get_many(self, paths: Any, fields: Any = None) -> dict[str, dict[str, Any] | None]:
        if CONFIG_PATH in paths:
            self.config_reads += 1
            if self.hold:
                self.holding.set()
                self.go.wait(5)
        return super().get_many(paths, fields)


def test_an_outage_costs_one_config_read_per_retry_period_not_one_per_call() -> None:
    # Each read of an unanswering store waits for its deadline: a call of an outage waited for
    # one in its admission and one in its recording (16 s instead of 6 through the served
    # entrypoint). The good copy is served instead, and the store asked again after a pause.
    clock = FakeClock()
    store = CountsConfigReads()
    source = _with_good_copy(store, clock)
    store.fail = True
    clock.advance(seconds=11)
    assert [source.current().rolloutPercentage for _ in range(5)] == [7] * 5
    assert source.for_recording().rolloutPercentage == 7
    assert store.config_reads == 2  # the first, then one failed read for all six calls
    clock.advance(seconds=RETRY_AFTER.total_seconds() - 1)
    source.current()
    assert store.config_reads == 2
    clock.advance(seconds=1)
    source.current()
    assert store.config_reads == 3
    # The store answers again: the next read after the pause takes the new config.
    store.fail = False
    store.docs[CONFIG_PATH] = {"phase": "beta", "rolloutPercentage": 9, "version": 4}
    clock.advance(seconds=RETRY_AFTER.total_seconds())
    assert source.current().rolloutPercentage == 9
    assert store.config_reads == 4


def test_one_call_reads_a_stale_config_while_the_others_get_the_good_copy() -> None:
    clock = FakeClock()
    store = CountsConfigReads()
    source = _with_good_copy(store, clock)
    store.docs[CONFIG_PATH] = {"phase": "beta", "rolloutPercentage": 9, "version": 4}
    clock.advance(seconds=11)
    store.hold = True
    seen: list[int] = []
    reader = threading.Thread(target=lambda: seen.append(source.current().rolloutPercentage))
    reader.start()
    assert store.holding.wait(5)
    assert source.current().rolloutPercentage == 7  # not a second read behind the first
    assert store.config_reads == 2
    store.go.set()
    reader.join(5)
    assert seen == [9]
    assert source.current().rolloutPercentage == 9
    assert store.config_reads == 2


def _held_read(ttl_s: int, stale_s: int) -> tuple[CountsConfigReads, ConfigSource, list[int]]:
    """A source with a good copy (7) and a changed document (9), ``stale_s`` after the copy
    was read with a TTL of ``ttl_s``; one call's read of it is held by the store."""
    clock = FakeClock()
    store = CountsConfigReads()
    store.docs[CONFIG_PATH] = {"phase": "beta", "rolloutPercentage": 7, "version": 3}
    source = ConfigSource(store, timedelta(seconds=ttl_s), clock)
    assert source.current().rolloutPercentage == 7
    store.docs[CONFIG_PATH] = {"phase": "beta", "rolloutPercentage": 9, "version": 4}
    clock.advance(seconds=stale_s)
    store.hold = True
    seen: list[int] = []
    threading.Thread(target=lambda: seen.append(source.current().rolloutPercentage)).start()
    assert store.holding.wait(5)
    return store, source, seen


def _second_call(source: ConfigSource) -> tuple[threading.Thread, list[int]]:
    """Another call asking ``source`` for the config, on a thread of its own, given 0.3 s."""
    second: list[int] = []
    call = threading.Thread(target=lambda: second.append(source.current().rolloutPercentage))
    call.start()
    call.join(0.3)
    return call, second


def test_a_copy_read_30_s_ago_is_not_served_beside_a_read_in_flight() -> None:
    # Contract 3: a change takes effect within 30 s. With the TTL at its maximum the copy is
    # 30 s old when the read starts; a second call waits for that read instead of taking it.
    store, source, seen = _held_read(ttl_s=30, stale_s=30)
    waiter, second = _second_call(source)
    assert waiter.is_alive() and second == []  # waiting, not served the copy from before
    store.go.set()
    waiter.join(5)
    assert second == [9] and seen == [9]
    assert store.config_reads == 2  # it took the read it waited for, not one of its own


def test_a_copy_under_30_s_old_is_served_beside_a_read_in_flight() -> None:
    store, source, _ = _held_read(ttl_s=29, stale_s=29)
    other, second = _second_call(source)
    store.go.set()
    assert not other.is_alive() and second == [7]  # at once: the copy is 29 s old


def test_a_call_that_waited_for_a_failed_read_is_served_the_last_good_copy() -> None:
    store, source, seen = _held_read(ttl_s=30, stale_s=31)
    store.fail = True
    waiter, second = _second_call(source)
    assert waiter.is_alive()
    store.go.set()
    waiter.join(5)
    assert seen == [7] and second == [7]
    assert store.config_reads == 2  # the failed read is not tried again by the waiter


def test_with_no_good_copy_every_call_reads_the_config() -> None:
    clock = FakeClock()
    store = CountsConfigReads()
    store.fail = True
    source = ConfigSource(store, timedelta(seconds=10), clock)
    for _ in range(3):
        with pytest.raises(Unavailable):
            source.current()
    assert store.config_reads == 3
    store.fail = False
    store.docs[CONFIG_PATH] = {"phase": "beta", "rolloutPercentage": 7, "version": 3}
    assert source.current().rolloutPercentage == 7


def _past_due(store: MemoryStore, uid: str, period_end: Any) -> None:
    seed_user(store, uid)
    store.docs[f"users/{uid}"]["subscription"] = {
        "tier": "premium",
        "status": "past_due",
        "currentPeriodEnd": period_end,
    }


@pytest.mark.parametrize(
    ("env", "days"),
    [({"EXTERNAL_DATA_GRACE_DAYS": "5"}, 5), ({}, 3), ({"EXTERNAL_DATA_GRACE_DAYS": "0"}, 0)],
)
def test_past_due_is_premium_until_exactly_the_configured_grace_days(
    env: dict[str, str], days: int
) -> None:
    store, engine = MemoryStore(), StaticEngine()
    set_config(store)
    clock = FakeClock()
    now = clock()
    app = App(load_settings(env), store, engine, now=clock, rng=lambda n: 0)
    # Inside the grace period by one second: premium, served in full.
    _past_due(store, "inside", now - timedelta(days=days) + timedelta(seconds=1))
    assert enrich.run(app, Caller("inside"), {"cvId": "cv-inside"})["access"] == "full"
    # Exactly N days after the period ended (and later): free, refused full.
    for uid, end in (
        ("edge", now - timedelta(days=days)),
        ("after", now - timedelta(days=days, seconds=1)),
    ):
        _past_due(store, uid, end)
        with pytest.raises(PermissionDenied):
            enrich.run(app, Caller(uid), {"cvId": f"cv-{uid}"})


GATED = {"phase": "full", "rolloutPercentage": 100, "fallbackEnabled": False}


@pytest.mark.parametrize(
    "odd",
    [
        {"components": {"premiumGating": False, "anomalyDetection": True}},
        {"components": {"premiumGating": False}, "messages": {"welcome_v2": "Hi"}},
        {"components": {"premiumGating": False}, "sources": {"twitter": {"enabled": True}}},
        {"components": {"premiumGating": False}, "targetGroups": None, "shadow": None},
        {"components": {"premiumGating": False}, "maxCohortUsers": 50.0},
        {"phase": "off", "rolloutPercentage": None, "fallbackEnabled": None},
    ],
    ids=["unknown-component", "unknown-message", "unknown-source", "nulls", "cap-float", "off"],
)
def test_the_kill_switch_beside_a_stray_field_is_obeyed_within_the_config_ttl(
    odd: dict[str, Any],
) -> None:
    # Contract 3: with phase off or premiumGating false nobody is gated, and a change takes
    # effect within 30 s. A name this version does not know or a null used to throw the whole
    # document away: the last good (gated) config stayed, and a cold instance gated everyone.
    store, engine = MemoryStore(), StaticEngine()
    seed_user(store, "alice")
    set_config(store, **GATED)
    clock = FakeClock()
    warm = App(load_settings({}), store, engine, now=clock, rng=lambda n: 0)
    with pytest.raises(PermissionDenied):
        enrich.run(warm, Caller("alice"), {"cvId": "cv-alice"})
    store.docs[CONFIG_PATH] = {**GATED, **odd, "version": 2}
    clock.advance(seconds=warm.settings.config_ttl_seconds + 1)
    assert enrich.run(warm, Caller("alice"), {"cvId": "cv-alice"})["access"] == "full"
    cold = _app(store, engine)
    assert enrich.run(cold, Caller("alice"), {"cvId": "cv-alice"})["access"] == "full"


def test_a_kill_switch_in_a_config_that_does_not_parse_is_still_obeyed() -> None:
    # The rest of the document is unusable (a phase no version knows), so the last good config
    # is served, but with nobody gated: the operator's emergency lever always works.
    store, engine = MemoryStore(), StaticEngine()
    seed_user(store, "alice")
    store.docs[CONFIG_PATH] = {
        "phase": "sideways",
        "components": {"premiumGating": False},
        "version": 3,
    }
    cold = _app(store, engine)
    assert enrich.run(cold, Caller("alice"), {"cvId": "cv-alice"})["access"] == "full"
    assert cold.config.for_recording().gating_active is False


def test_a_wrong_kind_of_value_still_keeps_the_last_good_config() -> None:
    store, engine = MemoryStore(), StaticEngine()
    seed_user(store, "alice")
    set_config(store, **GATED)
    clock = FakeClock()
    app = App(load_settings({}), store, engine, now=clock, rng=lambda n: 0)
    with pytest.raises(PermissionDenied):
        enrich.run(app, Caller("alice"), {"cvId": "cv-alice"})
    store.docs[CONFIG_PATH] = {**GATED, "rolloutPercentage": 140, "version": 2}
    clock.advance(seconds=app.settings.config_ttl_seconds + 1)
    with pytest.raises(PermissionDenied):
        enrich.run(app, Caller("alice"), {"cvId": "cv-alice"})
    assert app.config.for_recording().rolloutPercentage == 100


def test_an_unavailable_answer_is_counted_but_not_timed() -> None:
    # README: latencyMs is the p50/p95/p99 of enrichments that ran. A store that failed before
    # the work (the limiter's increment) must not look like a slow enrichment, above all to the
    # gradual rollback, which compares the gated cohort's p95.
    store, engine = IncrementFails(), StaticEngine()
    seed_user(store, "u", premium=True)
    set_config(store)
    with pytest.raises(Unavailable):
        enrich.run(_app(store, engine), Caller("u"), {"cvId": "cv-u"})
    fn = summed(store)["fn"]["enrichCVWithExternalData"]
    assert counter(store, "c.unavailable") == 1 and fn["requests"] == 1 and fn["errors"] == 1
    assert "lat" not in fn and get(summed(store), "cohort.in.lat") is None


def test_the_audit_switch_reaches_the_records_of_refusals_within_the_ttl() -> None:
    # Contract 3: a config change takes effect within 30 s. An instance answering only
    # refusals (no token: no config read of its own) kept the switch it saw last, forever.
    store, engine = MemoryStore(), StaticEngine()
    seed_user(store, "alice")
    set_config(store, components={"securityAudit": False})
    clock = FakeClock()
    app = App(load_settings({}), store, engine, now=clock, rng=lambda n: 0)
    enrich.run(app, Caller("alice"), {"cvId": "cv-alice", "mode": "preview"})

    def audits() -> int:
        return sum(p.startswith("external_data_security_audit/") for p in store.docs)

    with pytest.raises(Unauthenticated):
        enrich.run(app, Caller(None), {"cvId": "cv-alice"})
    assert audits() == 0
    set_config(store, components={"securityAudit": True})
    clock.advance(seconds=app.settings.config_ttl_seconds + 1)
    with pytest.raises(Unauthenticated):
        enrich.run(app, Caller(None), {"cvId": "cv-alice"})
    assert audits() == 1

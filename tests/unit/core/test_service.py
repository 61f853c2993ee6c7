"""Contract section 2 through the core service, on the in-memory store."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from common.errors import (
    GatingError,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from common.vocab import ResultStatus
from stores.memory import MemoryStore
from stores.schema import RAW, raw_shard_path
from tests.support.aggregates import buckets, counter
from tests.support.clock import FakeClock
from tests.support.doubles import StaticEngine, seed_user, set_config
from usecases import analytics, conversions, enrich, stats, track
from usecases.app import App
from usecases.context import Caller


def _audit_types(store: MemoryStore) -> list[str]:
    return [
        d["type"] for p, d in store.docs.items() if p.startswith("external_data_security_audit/")
    ]


def _metric(store: MemoryStore, name: str, g: str = "h") -> int:
    return counter(store, f"c.{name}", g)


def test_checks_run_in_the_contract_order(svc: App, store: MemoryStore) -> None:
    seed_user(store, "alice")
    set_config(store)
    with pytest.raises(Unauthenticated):
        enrich.run(svc, Caller(None), {"cvId": "bad id!"})
    with pytest.raises(InvalidArgument) as bad:
        enrich.run(svc, Caller("alice"), {"cvId": "cv-bob", "mode": "maximal"})
    assert bad.value.field == "mode"
    with pytest.raises(NotFound):
        enrich.run(svc, Caller("alice"), {"cvId": "cv-nobody"})
    seed_user(store, "bob")
    with pytest.raises(NotFound) as foreign:
        enrich.run(svc, Caller("alice"), {"cvId": "cv-bob"})
    assert "bob" not in foreign.value.message
    with pytest.raises(PermissionDenied) as denied:
        enrich.run(svc, Caller("alice"), {"cvId": "cv-alice"})
    assert denied.value.details and denied.value.details["reason"] == "premium_required"
    assert denied.value.details["upgradeUrl"] and denied.value.details["message"]
    assert _audit_types(store).count("unauthorized_access") == 3
    assert {"unauthenticated", "invalid_request"} <= set(_audit_types(store))
    assert _metric(store, "gateShown") == 1 and _metric(store, "unauthorizedAttempts") == 3


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (None, "cvId"),
        ([], "data"),
        ({"cvId": "x" * 129}, "cvId"),
        ({"cvId": "c", "sources": ["github", "myspace"]}, "sources"),
        ({"cvId": "c", "sources": "github"}, "sources"),
        ({"cvId": "c", "github": "a" * 40}, "github"),
        ({"cvId": "c", "website": "ftp://x"}, "website"),
        ({"cvId": "c", "name": "n" * 201}, "name"),
        ({"cvId": "c", "options": {"timeoutMs": 999}}, "options.timeoutMs"),
        ({"cvId": "c", "options": {"forceRefresh": "yes"}}, "options.forceRefresh"),
        (
            {"cvId": "c", "linkedin": {"export": {"Profile.csv": "x" * 1_000_001}}},
            "linkedin.export",
        ),
        ({"cvId": "c", "surprise": 1}, "surprise"),
    ],
)
def test_malformed_requests_name_the_field(svc: App, data: object, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        enrich.run(svc, Caller("alice"), data)
    assert err.value.field == field
    assert err.value.details == {"field": field}


def test_free_user_gets_a_trimmed_preview_with_free_messages(svc: App, store: MemoryStore) -> None:
    seed_user(store, "alice")
    set_config(store)
    out = enrich.run(
        svc, Caller("alice"), {"cvId": "cv-alice", "mode": "preview", "github": "octocat"}
    )
    assert out["access"] == "preview"
    data = out["enrichedData"]
    assert len(data["github"]["repositories"]) == 3 and data["github"]["locked"] is True
    assert len(data["skills"]) == 3 and data["locked"] is True
    # 2 items: nothing trimmed, no marker on them ("locked" not in <a list> could never fail)
    assert data["projects"] == [{"name": "p0"}, {"name": "p1"}]
    assert set(out["messages"]) == {"preview", "gate", "upgrade"}
    assert out["usage"] == {
        "tier": "free",
        "limit": 3,
        "remaining": 2,
        "resetAt": "2026-11-26T11:00:00Z",
    }
    # What the owner can read back from Firestore is the preview, never the full data.
    stored = json.loads(store.docs["cvs/cv-alice/externalData/latest"]["enrichedDataJson"])
    assert len(stored["github"]["repositories"]) == 3 and stored["github"]["locked"] is True


def test_premium_user_gets_full_data_and_premium_messages(svc: App, store: MemoryStore) -> None:
    seed_user(store, "pat", premium=True)
    set_config(store)
    out = enrich.run(svc, Caller("pat"), {"cvId": "cv-pat"})
    assert out["access"] == "full" and out["status"] == "success"
    assert len(out["enrichedData"]["github"]["repositories"]) == 6
    assert set(out["messages"]) == {"welcome", "guidance", "support"}
    assert out["usage"]["limit"] == 100 and out["usage"]["remaining"] == 99
    answer = stats.run(svc, Caller("pat"), {})
    assert answer["totals"]["requests"] == 1 and answer["totals"]["full"] == 1
    assert answer["hourly"]["used"] == 1 and answer["bySource"]["github"]["successful"] == 1


def test_fourth_free_call_in_the_hour_is_refused_without_consuming(
    svc: App, store: MemoryStore, clock: FakeClock
) -> None:
    seed_user(store, "alice")
    set_config(store)
    for _ in range(3):
        enrich.run(svc, Caller("alice"), {"cvId": "cv-alice", "mode": "preview"})
    with pytest.raises(ResourceExhausted) as err:
        enrich.run(svc, Caller("alice"), {"cvId": "cv-alice", "mode": "preview"})
    d = err.value.details
    assert d is not None
    assert d["tier"] == "free" and d["limit"] == 3 and d["remaining"] == 0
    assert d["resetAt"] == "2026-11-26T11:20:01Z" and d["retryAfterSeconds"] == 4801
    assert "rate_limit_exceeded" in _audit_types(store)
    answer = stats.run(svc, Caller("alice"), {})
    assert answer["hourly"] == {
        "limit": 3,
        "used": 3,
        "remaining": 0,
        "resetAt": "2026-11-26T11:20:01Z",
        "limited": True,
    }
    assert answer["totals"]["rateLimited"] == 1 and answer["totals"]["previews"] == 3


def test_a_user_who_upgrades_is_served_at_once(svc: App, store: MemoryStore) -> None:
    seed_user(store, "alice")
    set_config(store)
    enrich.run(svc, Caller("alice"), {"cvId": "cv-alice", "mode": "preview"})  # caches "free"
    with pytest.raises(PermissionDenied):
        enrich.run(svc, Caller("alice"), {"cvId": "cv-alice"})
    store.docs["users/alice"]["subscription"] = {"tier": "premium", "status": "active"}
    out = enrich.run(svc, Caller("alice"), {"cvId": "cv-alice"})
    assert out["access"] == "full"


def test_upgrade_also_lifts_a_free_rate_limit_at_once(svc: App, store: MemoryStore) -> None:
    seed_user(store, "alice")
    set_config(store)
    for _ in range(3):
        enrich.run(svc, Caller("alice"), {"cvId": "cv-alice", "mode": "preview"})
    store.docs["users/alice"]["subscription"] = {"tier": "premium", "status": "active"}
    out = enrich.run(svc, Caller("alice"), {"cvId": "cv-alice", "mode": "preview"})
    assert out["usage"]["tier"] == "premium" and out["usage"]["remaining"] == 96


def test_warm_hot_path_is_one_round_trip_and_cold_is_two(
    svc: App, store: MemoryStore, clock: FakeClock
) -> None:
    clock.advance(minutes=5)  # past the settling time of the closed window's count
    seed_user(store, "pat", premium=True)
    set_config(store)
    before = store.round_trips
    enrich.run(svc, Caller("pat"), {"cvId": "cv-pat"})
    # batched read + increment + the batched records with the result
    assert store.round_trips - before == 3
    before = store.round_trips
    enrich.run(svc, Caller("pat"), {"cvId": "cv-pat"})
    # increment + the records with the result, and the re-read of the held user and CV copies,
    # sent before the increment and collected after it (test_copies_rechecked): no wait of its own
    assert store.round_trips - before == 3


def test_kill_switch_and_phase_change_take_effect_after_the_config_ttl(
    svc: App, store: MemoryStore, clock: FakeClock
) -> None:
    seed_user(store, "alice")
    set_config(store)
    with pytest.raises(PermissionDenied):
        enrich.run(svc, Caller("alice"), {"cvId": "cv-alice"})
    set_config(store, components={"premiumGating": False}, version=2)
    clock.advance(seconds=svc.settings.config_ttl_seconds + 1)
    out = enrich.run(svc, Caller("alice"), {"cvId": "cv-alice"})
    assert out["access"] == "full" and out["usage"]["limit"] == 100
    set_config(store, phase="off", version=3)
    clock.advance(seconds=svc.settings.config_ttl_seconds + 1)
    assert svc.config.current().version == 3
    assert enrich.run(svc, Caller("alice"), {"cvId": "cv-alice"})["access"] == "full"


def test_an_unreadable_config_keeps_the_last_good_one(
    svc: App, store: MemoryStore, clock: FakeClock
) -> None:
    seed_user(store, "alice")
    set_config(store)
    assert svc.config.current().phase.value == "full"
    store.docs["config/externalDataRollout"] = {"phase": "sideways", "rolloutPercentage": 140}
    clock.advance(seconds=60)
    assert svc.config.current().phase.value == "full" and svc.config.current().version == 1


def test_store_down_is_unavailable_never_a_free_pass(svc: App, store: MemoryStore) -> None:
    seed_user(store, "alice")
    set_config(store)
    store.fail = True
    with pytest.raises(Unavailable):
        enrich.run(svc, Caller("alice"), {"cvId": "cv-alice"})


def test_engine_crash_is_internal_and_counted_as_an_error(
    svc: App, store: MemoryStore, engine: StaticEngine
) -> None:
    seed_user(store, "pat", premium=True)
    set_config(store)
    engine.fail = True
    with pytest.raises(GatingError) as err:
        enrich.run(svc, Caller("pat"), {"cvId": "cv-pat"})
    assert err.value.code.value == "internal" and "boom" not in err.value.message
    assert _metric(store, "errors") == 1


def test_all_sources_failing_upstream_is_counted_apart_and_costs_no_quota(
    svc: App, store: MemoryStore, engine: StaticEngine
) -> None:
    seed_user(store, "pat", premium=True)
    seed_user(store, "alice")
    set_config(store)
    engine.status = ResultStatus.FAILED
    out = enrich.run(svc, Caller("pat"), {"cvId": "cv-pat"})
    assert out["status"] == "failed"
    assert out["usage"]["remaining"] == 100  # fair quota: the unit came back
    with pytest.raises(PermissionDenied):
        enrich.run(svc, Caller("alice"), {"cvId": "cv-alice"})
    assert _metric(store, "errors") == 0 and _metric(store, "requests") == 2
    assert _metric(store, "upstreamFailures", "m") == 1
    assert _metric(store, "upstreamFailures", "d") == 1
    again = enrich.run(svc, Caller("pat"), {"cvId": "cv-pat"})
    assert again["usage"]["remaining"] == 100


def test_an_engine_crash_is_a_service_error_gives_the_unit_back_and_names_the_user(
    svc: App, store: MemoryStore, engine: StaticEngine
) -> None:
    seed_user(store, "alice", premium=True)
    set_config(store)
    engine.fail = True
    with pytest.raises(Internal):
        enrich.run(svc, Caller("alice"), {"cvId": "cv-alice"})
    engine.fail = False
    assert _metric(store, "errors", "m") == 1
    assert sum(len(d.get("failedUsers", {})) for d in buckets(store, "m")) == 1
    assert enrich.run(svc, Caller("alice"), {"cvId": "cv-alice"})["usage"]["remaining"] == 99


def test_track_events_are_limited_per_minute_and_ignore_a_foreign_user_id(
    svc: App, store: MemoryStore, clock: FakeClock
) -> None:
    out = track.run(svc, Caller("alice"), {"event": "upgrade_clicked", "userId": "bob"})
    assert out["recorded"] is True and out["eventId"]
    assert not any(p.startswith("external_data_usage/bob") for p in store.docs)
    for _ in range(59):
        track.run(svc, Caller("alice"), {"event": "preview_viewed"})
    with pytest.raises(ResourceExhausted):
        track.run(svc, Caller("alice"), {"event": "preview_viewed"})
    with pytest.raises(InvalidArgument):
        track.run(svc, Caller("alice"), {"event": "bought_yacht"})
    with pytest.raises(InvalidArgument):
        track.run(svc, Caller("alice"), {"event": "gate_shown", "metadata": {"x": "y" * 3000}})
    assert _metric(store, "upgradeClicks") == 1


def test_a_funnel_event_not_recorded_is_not_counted_either(svc: App, store: MemoryStore) -> None:
    """Contract 2.2: ``recorded: false`` while usage tracking is switched off, and section 5's
    switch: the event reaches neither the user's records nor the funnel figures."""
    seed_user(store, "fay")
    set_config(store, components={"usageTracking": False})
    for _ in range(3):
        assert track.run(svc, Caller("fay"), {"event": "upgrade_clicked"})["recorded"] is False
    assert _metric(store, "upgradeClicks", "m") == 0 and _metric(store, "trackedEvents", "m") == 0
    assert counter(store, "fn.trackExternalDataUsage.requests", "m") == 3  # the calls still count


def test_stats_are_zeros_for_a_new_user_and_private(svc: App) -> None:
    answer = stats.run(svc, Caller("newbie"), None)
    assert answer["totals"] == dict.fromkeys(
        ("requests", "successful", "failed", "previews", "full", "rateLimited"), 0
    )
    assert answer["averageDurationMs"] == 0 and answer["lastUsedAt"] is None
    assert answer["hourly"]["remaining"] == 100  # no config: gating off, premium-sized limits
    with pytest.raises(PermissionDenied):
        stats.run(svc, Caller("newbie"), {"userId": "someone"})
    assert stats.run(svc, Caller("root", admin=True), {"userId": "someone"})["userId"] == "someone"


def test_conversion_is_recorded_from_the_subscription_not_the_client(
    svc: App, store: MemoryStore, clock: FakeClock
) -> None:
    seed_user(store, "alice")
    set_config(store)
    enrich.run(svc, Caller("alice"), {"cvId": "cv-alice", "mode": "preview"})
    clock.advance(days=2)
    before = {"subscription": {"tier": "free"}}
    after = {"subscription": {"tier": "premium", "status": "active"}}
    assert conversions.subscription_changed(svc, "alice", before, after) is True
    assert conversions.subscription_changed(svc, "alice", after, after) is False
    conv = [d for p, d in store.docs.items() if "/conversions/" in p]
    assert len(conv) == 1 and conv[0]["precededByFunnel"] is True
    report = analytics.run(
        svc, Caller("root", admin=True), {"startDate": "2026-11-26", "endDate": "2026-11-28"}
    )
    assert report["totals"]["conversions"] == 1 and report["rates"]["conversionRate"] == 1.0
    assert report["totals"]["previews"] == 1


def test_analytics_are_admin_only_and_never_nan(svc: App) -> None:
    with pytest.raises(PermissionDenied):
        analytics.run(svc, Caller("alice"), {"startDate": "2026-11-01", "endDate": "2026-11-02"})
    out = analytics.run(
        svc,
        Caller("root", admin=True),
        {"startDate": "2026-11-01", "endDate": "2026-11-02", "granularity": "hour"},
    )
    assert out["rates"] == {
        "successRate": 0.0,
        "errorRate": 0.0,
        "conversionRate": 0.0,
        "previewEngagementRate": 0.0,
        "upstreamFailureRate": 0.0,
    }
    assert len(out["series"]) == 48 and out["latencyMs"] == {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    with pytest.raises(InvalidArgument) as err:
        analytics.run(
            svc,
            Caller("root", admin=True),
            {"startDate": "2026-01-01", "endDate": "2026-06-01"},
        )
    assert err.value.field == "endDate"
    with pytest.raises(InvalidArgument):
        analytics.run(
            svc,
            Caller("root", admin=True),
            {"startDate": "2026-11-01", "endDate": "2026-11-20", "granularity": "hour"},
        )


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("9999-12-31", "9999-12-31", "startDate"),  # the period's end would be year 10000
        ("9998-12-30", "9999-12-30", "endDate"),
        ("0001-01-01", "0001-01-02", "startDate"),
        ("2026-W01-1", "2026-11-02", "startDate"),  # an ISO week date, not YYYY-MM-DD
        ("2026-11-01", "2026-306", "endDate"),  # an ordinal date
    ],
)
def test_analytics_dates_outside_the_calendar_form_or_range_name_the_field(
    svc: App, start: str, end: str, field: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        analytics.run(svc, Caller("root", admin=True), {"startDate": start, "endDate": end})
    assert err.value.field == field
    for first, last in (("1970-01-01", "1970-01-01"), ("9998-12-31", "9998-12-31")):
        out = analytics.run(svc, Caller("root", admin=True), {"startDate": first, "endDate": last})
        assert out["period"]["endDate"] == last and out["totals"]["requests"] == 0


def test_analytics_figures_add_up(svc: App, store: MemoryStore, clock: FakeClock) -> None:
    seed_user(store, "pat", premium=True)
    seed_user(store, "alice")
    set_config(store)
    enrich.run(svc, Caller("pat"), {"cvId": "cv-pat"})
    enrich.run(svc, Caller("alice"), {"cvId": "cv-alice", "mode": "preview"})
    with pytest.raises(PermissionDenied):
        enrich.run(svc, Caller("alice"), {"cvId": "cv-alice"})
    clock.advance(hours=1)
    out = analytics.run(
        svc,
        Caller("root", admin=True),
        {"startDate": "2026-11-26", "endDate": "2026-11-26", "granularity": "hour"},
    )
    t = out["totals"]
    assert (t["requests"], t["successful"], t["previews"], t["fullRequests"]) == (3, 2, 1, 1)
    assert (t["premiumRequests"], t["freeRequests"], t["gateShown"]) == (1, 2, 1)
    assert out["rates"]["successRate"] == 1.0 and out["rates"]["errorRate"] == 0.0
    assert out["rates"]["previewEngagementRate"] == 1.0
    assert out["series"][10]["requests"] == 3 and out["latencyMs"]["p50"] > 0
    assert out["bySource"]["github"]["requests"] == 2
    assert out["security"]["unauthorizedAttempts"] == 1


def test_a_renewal_or_a_redelivered_trigger_is_not_another_conversion(
    svc: App, store: MemoryStore, clock: FakeClock
) -> None:
    active = {"subscription": {"tier": "premium", "status": "active"}}
    renewed = {"subscription": {"tier": "premium", "status": "active", "lifetime": False}}
    past_due = {"subscription": {"tier": "premium", "status": "past_due"}}
    assert conversions.subscription_changed(svc, "u", active, renewed, "evt-1") is False
    assert conversions.subscription_changed(svc, "u", past_due, active, "evt-2") is False
    free = {"subscription": {"tier": "free"}}
    assert conversions.subscription_changed(svc, "u", free, active, "evt-3") is True
    assert conversions.subscription_changed(svc, "u", free, active, "evt-3") is False  # redelivery
    canceled = {"subscription": {"tier": "premium", "status": "canceled"}}
    assert (
        conversions.subscription_changed(svc, "u", canceled, active, "evt-4") is True
    )  # reactivation
    assert _metric(store, "conversions") == 2


def test_buying_again_long_after_a_subscription_lapsed_is_a_conversion(
    svc: App, store: MemoryStore, clock: FakeClock
) -> None:
    """Section 1 makes a subscription past its period (and past the grace days) free, whatever
    its status still says: paying then converts. A renewal written a day late does not."""
    now = clock()

    def sub(status: str, end_days: float, **more: Any) -> dict[str, Any]:
        end = now + timedelta(days=end_days)
        return {
            "subscription": {"tier": "premium", "status": status, "currentPeriodEnd": end, **more}
        }

    bought = sub("active", 30)
    assert conversions.subscription_changed(svc, "a", sub("active", -90), bought, "evt-a") is True
    assert conversions.subscription_changed(svc, "b", sub("past_due", -60), bought, "evt-b") is True
    grant = sub("active", -20, complimentary=True)
    assert conversions.subscription_changed(svc, "c", grant, bought, "evt-c") is True
    assert conversions.subscription_changed(svc, "d", sub("active", -1), bought, "evt-d") is False
    assert _metric(store, "conversions") == 3


def test_client_funnel_events_never_make_a_conversion_count_as_after_a_preview(
    svc: App, store: MemoryStore
) -> None:
    track.run(svc, Caller("claimer"), {"event": "gate_shown"})
    track.run(svc, Caller("claimer"), {"event": "preview_viewed"})
    free = {"subscription": {"tier": "free"}}
    assert conversions.subscription_changed(
        svc, "claimer", free, {"subscription": {"tier": "premium", "status": "active"}}
    )
    conv = [d for p, d in store.docs.items() if "/conversions/" in p]
    assert conv[0]["precededByFunnel"] is False


def test_while_ungated_a_preview_request_gets_the_full_pre_gating_experience(
    svc: App, store: MemoryStore
) -> None:
    seed_user(store, "alice")
    out = enrich.run(
        svc, Caller("alice"), {"cvId": "cv-alice", "mode": "preview"}
    )  # no config: off
    assert out["access"] == "full" and "locked" not in out["enrichedData"]
    assert len(out["enrichedData"]["github"]["repositories"]) == 6
    set_config(store, phase="off", version=2)
    assert enrich.run(svc, Caller("alice"), {"cvId": "cv-alice"})["access"] == "full"


def test_refusals_are_counted_but_kept_out_of_the_latency_histograms(
    svc: App, store: MemoryStore
) -> None:
    seed_user(store, "alice")
    set_config(store)
    with pytest.raises(PermissionDenied):
        enrich.run(svc, Caller("alice"), {"cvId": "cv-alice"})
    enrich.run(svc, Caller("alice"), {"cvId": "cv-alice", "mode": "preview"})
    hour = buckets(store, "h")
    fn = hour[0]["fn"]["enrichCVWithExternalData"]
    assert fn["requests"] == 2 and sum(fn["lat"].values()) == 1
    assert (
        hour[0]["cohort"]["in"]["requests"] == 2
        and sum(hour[0]["cohort"]["in"]["lat"].values()) == 1
    )


@pytest.mark.parametrize(
    "data",
    [
        {"cvId": "cv-alice", "john.doe@example.com": 1},
        {"cvId": "cv-alice", "sources": ["jane@example.com"]},
        {"cvId": "cv-alice", "x" * 5000: 1},
    ],
)
def test_errors_never_echo_client_text_that_could_be_personal(
    svc: App, data: dict[str, Any]
) -> None:
    with pytest.raises(InvalidArgument) as err:
        enrich.run(svc, Caller("alice"), data)
    assert "@" not in err.value.message and len(err.value.message) < 120


@pytest.mark.parametrize("cv_id", ["abc\n", "a/b", ""])
def test_ids_must_match_entirely(svc: App, cv_id: str) -> None:
    with pytest.raises(InvalidArgument):
        enrich.run(svc, Caller("alice"), {"cvId": cv_id})


def test_an_unexpected_crash_is_internal_recorded_and_never_echoes_input(
    svc: App, store: MemoryStore
) -> None:
    seed_user(store, "alice")
    real = store.get_many

    def explode(paths: Sequence[str], fields: Any = None) -> dict[str, dict[str, Any] | None]:
        raise UnicodeEncodeError("utf-8", "alice@example.com +1 555 0100", 0, 1, "surrogates")

    store.get_many = explode  # type: ignore[method-assign]
    with pytest.raises(Internal) as err:
        enrich.run(svc, Caller("alice"), {"cvId": "cv-alice"})
    store.get_many = real  # type: ignore[method-assign]
    assert "example.com" not in err.value.message and "ref" in err.value.message
    assert _metric(store, "errors") == 1 and _metric(store, "requests") == 1


def test_a_failed_refund_keeps_the_refusal(store: MemoryStore, clock: FakeClock) -> None:
    from gating.ratelimit import SlidingWindowLimiter
    from stores.errors import StoreError

    lim = SlidingWindowLimiter(store, "enrich", timedelta(hours=1))
    for _ in range(3):
        lim.admit(lim.window("u", clock()), 3, 0)
    real = store.increment

    def refund_fails(path: str, field_name: str, by: int, extra: Mapping[str, Any]) -> int:
        if by < 0:
            raise StoreError("down")
        return real(path, field_name, by, extra)

    store.increment = refund_fails  # type: ignore[method-assign]
    decision = lim.admit(lim.window("u", clock()), 3, 0)
    assert not decision.allowed


def _hourly_after(
    svc: App, store: MemoryStore, uid: str, calls: int, mode: str = "full"
) -> tuple[Any, Any]:
    """The last enrichment's ``usage`` and the stats' ``hourly`` after ``calls`` enrichments."""
    usage = None
    for _ in range(calls):
        usage = enrich.run(svc, Caller(uid), {"cvId": f"cv-{uid}", "mode": mode})["usage"]
    return usage, stats.run(svc, Caller(uid), {})["hourly"]


def test_stats_report_the_limit_a_shadowed_call_took(svc: App, store: MemoryStore) -> None:
    """Shadow mode serves a free user ungated, at the premium tier's limit (contract 3): 2.3's
    ``hourly`` is that limit, not the free tier's the gate would have applied."""
    seed_user(store, "fay")
    set_config(store, shadow=True)
    usage, hourly = _hourly_after(svc, store, "fay", 6)
    assert usage["limit"] == 100 and usage["remaining"] == 94
    assert (hourly["limit"], hourly["used"], hourly["remaining"]) == (100, 6, 94)


def test_an_ungated_free_users_refusal_names_their_own_tier_and_the_limit_that_applied(
    svc: App, store: MemoryStore
) -> None:
    # As the answer's ``usage`` does (contract 2.1): ``tier`` the caller's own, ``limit`` the
    # one that applied (premium-sized while the gate does not apply to them).
    seed_user(store, "fay")
    set_config(store, shadow=True)
    usage, _ = _hourly_after(svc, store, "fay", 100)
    assert (usage["tier"], usage["limit"], usage["remaining"]) == ("free", 100, 0)
    with pytest.raises(ResourceExhausted) as err:
        enrich.run(svc, Caller("fay"), {"cvId": "cv-fay"})
    details = err.value.details or {}
    assert (details["tier"], details["limit"], details["remaining"]) == ("free", 100, 0)


def test_stats_report_the_limit_of_a_user_left_outside_by_the_cohort_cap(
    svc: App, store: MemoryStore
) -> None:
    set_config(store, phase="beta", rolloutPercentage=100, fallbackEnabled=True, maxCohortUsers=1)
    for uid in ("first", "second"):
        seed_user(store, uid)
    _, seated = _hourly_after(svc, store, "first", 1, "preview")  # the seat: gated, free tier
    usage, outside = _hourly_after(svc, store, "second", 5)  # outside: pre-gating experience
    assert seated["limit"] == 3
    assert usage["limit"] == 100 and (outside["limit"], outside["used"]) == (100, 5)
    # Asking for one's stats never takes a seat: a user with no call yet sees the cap's verdict.
    seed_user(store, "third")
    assert stats.run(svc, Caller("third"), {})["hourly"]["limit"] == 100
    assert stats.run(svc, Caller("root", admin=True), {"userId": "first"})["hourly"]["limit"] == 3


def test_stats_with_rate_limiting_off_are_unlimited_like_the_answers_usage(
    svc: App, store: MemoryStore
) -> None:
    seed_user(store, "uma")
    set_config(store, components={"rateLimiting": False})
    usage, hourly = _hourly_after(svc, store, "uma", 1, "preview")
    assert (usage["limit"], usage["remaining"], usage["resetAt"]) == (None, None, None)
    assert (hourly["limit"], hourly["remaining"], hourly["resetAt"]) == (None, None, None)


def test_with_rate_limiting_off_enrichments_are_still_counted(
    svc: App, store: MemoryStore, clock: FakeClock
) -> None:
    # Contract 4: "every admitted enrichment counts". Limits switched off used to count nothing:
    # stats said used 0, and limits switched back on mid-hour started from a fresh budget.
    seed_user(store, "cal")
    set_config(store, components={"rateLimiting": False})
    _, hourly = _hourly_after(svc, store, "cal", 5, "preview")
    assert hourly["used"] == 5 and hourly["limit"] is None
    set_config(store, components={"rateLimiting": True})
    clock.advance(seconds=svc.settings.config_ttl_seconds + 1)
    with pytest.raises(ResourceExhausted):
        enrich.run(svc, Caller("cal"), {"cvId": "cv-cal", "mode": "preview"})


def test_used_is_the_sliding_count_even_above_a_smaller_limit(
    svc: App, store: MemoryStore, clock: FakeClock
) -> None:
    # A premium user's 10 calls, then the subscription lapses: the free limit is 3, and `used`
    # says 10 (it was capped at the limit), `remaining` 0.
    seed_user(store, "lee", premium=True)
    set_config(store)
    _hourly_after(svc, store, "lee", 10)
    store.docs["users/lee"].pop("subscription")
    svc.users.clear()
    hourly = stats.run(svc, Caller("lee"), {})["hourly"]
    assert (hourly["limit"], hourly["used"], hourly["remaining"]) == (3, 10, 0)


def test_a_call_refunded_with_limits_off_is_taken_out_of_the_count(
    svc: App, store: MemoryStore, engine: StaticEngine
) -> None:
    seed_user(store, "pat", premium=True)
    set_config(store, components={"rateLimiting": False})
    engine.status = ResultStatus.FAILED  # every source failed upstream: fair quota
    enrich.run(svc, Caller("pat"), {"cvId": "cv-pat"})
    engine.status = ResultStatus.SUCCESS
    enrich.run(svc, Caller("pat"), {"cvId": "cv-pat"})
    assert stats.run(svc, Caller("pat"), {})["hourly"]["used"] == 1


def test_a_rare_failure_is_not_rounded_away_from_the_rates(svc: App, store: MemoryStore) -> None:
    # Contract 2.4: rates are 0 when there is no data; 1 error in 30,000 answers rounded to four
    # places read 0.0 while the series showed the error.
    minute = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    store.docs[raw_shard_path(minute, 0)] = {
        "granularity": RAW,
        "bucketStart": minute,
        "shard": 0,
        "c": {"requests": 30_000, "successful": 29_998, "errors": 1, "upstreamFailures": 1},
    }
    out = analytics.run(
        svc, Caller("root", admin=True), {"startDate": "2026-11-26", "endDate": "2026-11-26"}
    )
    assert out["rates"]["errorRate"] == pytest.approx(1 / 30_000)
    assert out["rates"]["upstreamFailureRate"] == pytest.approx(1 / 30_000)

"""Each switch turns off its own records only (contract section 5): with usage analytics off
and conversion tracking on, a conversion still says whether a preview or gate preceded it. The
funnel time lived only in the usage records the switch turns off, so every such conversion
said ``precededByFunnel: false``."""

from __future__ import annotations

from datetime import timedelta

import pytest

from common.settings import load_settings
from stores.memory import MemoryStore
from stores.schema import usage_path
from tests.support.aggregates import counter
from tests.support.clock import FakeClock
from tests.support.doubles import StaticEngine, seed_user, set_config
from usecases import conversions, enrich
from usecases.app import App
from usecases.context import Caller

PREMIUM = {"subscription": {"tier": "premium", "status": "active"}}


@pytest.mark.parametrize(
    ("env", "components"),
    [({"EXTERNAL_DATA_ANALYTICS_ENABLED": "false"}, {}), ({}, {"usageTracking": False})],
)
def test_a_conversion_after_a_preview_says_so_with_usage_records_off(
    env: dict[str, str], components: dict[str, bool]
) -> None:
    store, clock = MemoryStore(), FakeClock()
    app = App(load_settings(env), store, StaticEngine(), now=clock, rng=lambda n: 0)
    set_config(store, components=components)
    seed_user(store, "fay")
    enrich.run(app, Caller("fay"), {"cvId": "cv-fay", "mode": "preview"})
    assert set(store.docs[usage_path("fay")]) == {"uid", "lastFunnelAt"}  # no usage figures
    assert not [p for p in store.docs if p.startswith(f"{usage_path('fay')}/events/")]
    clock.advance(hours=1)
    assert conversions.subscription_changed(app, "fay", {}, PREMIUM, "evt-1") is True
    (conv,) = [d for p, d in store.docs.items() if "/conversions/" in p]
    assert conv["precededByFunnel"] is True and conv["at"] - conv["funnelAt"] == timedelta(hours=1)


def test_with_conversion_tracking_off_too_nothing_of_the_user_is_written() -> None:
    store, clock = MemoryStore(), FakeClock()
    env = {"EXTERNAL_DATA_ANALYTICS_ENABLED": "false", "EXTERNAL_DATA_CONVERSION_TRACKING": "false"}
    app = App(load_settings(env), store, StaticEngine(), now=clock, rng=lambda n: 0)
    set_config(store)
    seed_user(store, "fay")
    enrich.run(app, Caller("fay"), {"cvId": "cv-fay", "mode": "preview"})
    assert usage_path("fay") not in store.docs


def test_a_conversion_of_a_bucket_user_left_without_a_seat_counts_outside_the_cohort() -> None:
    # Contract 6's gradual rollback compares the gated cohort's conversion with the users'
    # outside it: a user the bucket takes in but ``maxCohortUsers`` left without a seat was
    # served ungated, so their conversion is an outside one.
    store, clock = MemoryStore(), FakeClock()
    app = App(load_settings({}), store, StaticEngine(), now=clock, rng=lambda n: 0)
    set_config(store, phase="beta", rolloutPercentage=100, fallbackEnabled=True, maxCohortUsers=1)
    for uid in ("first", "second"):
        seed_user(store, uid)
        enrich.run(app, Caller(uid), {"cvId": f"cv-{uid}", "mode": "preview"})
    assert conversions.subscription_changed(app, "first", {}, PREMIUM, "evt-first") is True
    assert conversions.subscription_changed(app, "second", {}, PREMIUM, "evt-second") is True
    assert counter(store, "cohort.in.conversions") == 1  # the seated user
    assert counter(store, "cohort.out.conversions") == 1  # the one the cap left outside

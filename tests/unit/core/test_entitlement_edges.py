"""Premium entitlement at its edges (contract section 1; found by mutation testing, issue 13):
the period's exact end, timestamps as Firestore and clients write them, and which earlier
subscriptions count as "was paying" (a renewal, not a conversion)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from common.vocab import Tier
from gating.entitlements import is_premium, paying_before, tier_of, was_paying
from stores.memory import MemoryStore
from tests.support.doubles import seed_user, set_config
from usecases import enrich
from usecases.app import App
from usecases.context import Caller

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def _doc(**sub: Any) -> dict[str, Any]:
    return {"subscription": {"tier": "premium", **sub}}


@pytest.mark.parametrize(
    ("end", "premium"),
    [
        (NOW + timedelta(seconds=1), True),
        (NOW, False),  # the period ended at this very moment
        (NOW - timedelta(seconds=1), False),
        # Naive timestamps are UTC; aware ones keep their zone (11:00+02:00 is 09:00 UTC).
        (datetime(2026, 11, 26, 10, 30), True),
        (datetime(2026, 11, 26, 11, 0, tzinfo=timezone(timedelta(hours=2))), False),
        (datetime(2026, 11, 26, 11, 0, tzinfo=timezone(timedelta(hours=-2))), True),
        # ISO strings as clients and exports write them.
        ("2026-11-26T10:30:00Z", True),
        ("2026-11-26T09:30:00Z", False),
        ("2026-11-26T10:30:00+00:00", True),
        ("2026-11-26T12:30:00+02:00", True),
        ("not a date", False),
        (12345, False),
    ],
)
def test_an_active_subscription_is_premium_until_its_period_ends(end: Any, premium: bool) -> None:
    doc = _doc(status="active", currentPeriodEnd=end)
    assert is_premium(doc, NOW, 3) is premium
    assert tier_of(doc, NOW, 3) is (Tier.PREMIUM if premium else Tier.FREE)


def test_tier_of_reads_the_grace_days() -> None:
    doc = _doc(status="past_due", currentPeriodEnd=NOW - timedelta(days=2))
    assert tier_of(doc, NOW, 3) is Tier.PREMIUM and tier_of(doc, NOW, 2) is Tier.FREE
    assert tier_of(None, NOW, 3) is Tier.FREE and tier_of({}, NOW, 3) is Tier.FREE


@pytest.mark.parametrize(
    ("doc", "paying"),
    [
        (_doc(status="active"), True),
        (_doc(status="trialing"), True),
        (_doc(status="past_due"), True),
        (_doc(lifetime=True, status="canceled"), True),
        (_doc(lifetime=False, status="canceled"), False),
        (_doc(status="canceled"), False),
        ({"subscription": {"tier": "free", "status": "active"}}, False),
        ({"subscription": "premium"}, False),
        ({}, False),
        (None, False),
    ],
)
def test_was_paying_is_an_uncanceled_premium_subscription(doc: Any, paying: bool) -> None:
    assert was_paying(doc) is paying


@pytest.mark.parametrize(
    ("doc", "paying"),
    [
        (_doc(status="active", currentPeriodEnd=NOW + timedelta(days=20)), True),
        (_doc(status="active"), True),  # no end: premium
        (_doc(status="active", currentPeriodEnd=NOW - timedelta(days=1)), True),  # renewal late
        (_doc(status="past_due", currentPeriodEnd=NOW - timedelta(days=2)), True),
        (_doc(status="active", currentPeriodEnd=NOW - timedelta(days=90)), False),  # lapsed
        (_doc(status="past_due", currentPeriodEnd=NOW - timedelta(days=60)), False),
        (
            _doc(status="active", complimentary=True, currentPeriodEnd=NOW - timedelta(days=20)),
            False,
        ),
        (_doc(status="canceled", currentPeriodEnd=NOW + timedelta(days=5)), False),
        (_doc(lifetime=True, status="canceled"), True),
        (None, False),
    ],
)
def test_paying_before_a_change_follows_the_dates_with_the_grace_days(
    doc: Any, paying: bool
) -> None:
    assert paying_before(doc, NOW, 3) is paying


def test_the_instance_keeps_only_the_gates_fields_of_a_profile(
    svc: App, store: MemoryStore
) -> None:
    # A user may fill their own profile with other fields (the rules allow it); an instance that
    # cached whole profiles for 10,000 users could be made to hold gigabytes.
    seed_user(store, "pat", premium=True, groups=["beta-testers"])
    store.docs["users/pat"]["bio"] = ["x" * 1000] * 1000
    set_config(store)
    for mode in ("full", "preview"):
        enrich.run(svc, Caller("pat"), {"cvId": "cv-pat", "mode": mode})
    kept = svc.users.get("pat", svc.now())
    assert kept == {
        "subscription": {"tier": "premium", "status": "active"},
        "rolloutGroups": ["beta-testers"],
    }

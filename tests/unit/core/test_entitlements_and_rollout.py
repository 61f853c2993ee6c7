"""Contract section 1 (premium) and section 3 (cohort, decision)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from common.vocab import Access, Mode
from gating.decision import Reason, decide
from gating.entitlements import is_premium
from gating.rollout import ConfigInvalid, Phase, bucket, in_cohort, parse

NOW = datetime(2026, 11, 26, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sub", "expected"),
    [
        (None, False),
        ({"tier": "free", "status": "active"}, False),
        ({"tier": "premium", "status": "active"}, True),
        (
            {"tier": "premium", "status": "trialing", "currentPeriodEnd": NOW + timedelta(days=1)},
            True,
        ),
        (
            {"tier": "premium", "status": "active", "currentPeriodEnd": NOW - timedelta(seconds=1)},
            False,
        ),
        (
            {"tier": "premium", "status": "past_due", "currentPeriodEnd": NOW - timedelta(days=2)},
            True,
        ),
        (
            {"tier": "premium", "status": "past_due", "currentPeriodEnd": NOW - timedelta(days=3)},
            False,
        ),
        ({"tier": "premium", "status": "past_due"}, False),
        ({"tier": "premium", "status": "canceled", "lifetime": True}, True),
        ({"tier": "premium", "status": "canceled"}, False),
        ({"tier": "premium", "status": "active", "currentPeriodEnd": "garbage"}, False),
    ],
)
def test_premium_follows_the_subscription_with_grace(
    sub: dict[str, Any] | None, expected: bool
) -> None:
    doc = {"subscription": sub} if sub is not None else {}
    assert is_premium(doc, NOW, grace_days=3) is expected


def test_custom_claims_or_missing_doc_never_make_premium() -> None:
    assert is_premium(None, NOW, 3) is False
    assert is_premium({"premium": True, "role": "admin"}, NOW, 3) is False


def test_bucket_is_stable_and_spread() -> None:
    assert bucket("alice") == bucket("alice")
    buckets = [bucket(f"user-{i}") for i in range(5000)]
    assert min(buckets) == 0 and max(buckets) == 99
    share = sum(1 for b in buckets if b < 25) / len(buckets)
    assert 0.22 < share < 0.28


def test_missing_config_is_phase_off_with_all_components_on() -> None:
    cfg = parse(None)
    assert cfg.phase is Phase.OFF and cfg.components.premiumGating and cfg.components.rateLimiting
    assert not cfg.gating_active


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"phase": "later"}, "phase"),
        ({"phase": "beta", "rolloutPercentage": 140}, "rolloutPercentage"),
        ({"phase": "beta", "components": {"premiumGating": "yes"}}, "components.premiumGating"),
        ({"phase": "beta", "components": {"laser": True}}, "laser"),
        ({"phase": "beta", "messages": {"nope": "x"}}, "messages.nope"),
    ],
)
def test_bad_config_is_refused_naming_the_field(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigInvalid, match=field.split(".")[0]):
        parse(doc)


def _uid_in_bucket(pred: Callable[[int], bool]) -> str:
    return next(f"u{i}" for i in range(10000) if pred(bucket(f"u{i}")))


def test_cohort_by_phase() -> None:
    low = _uid_in_bucket(lambda b: b == 0)
    high = _uid_in_bucket(lambda b: b == 99)
    beta = parse({"phase": "beta", "rolloutPercentage": 1})
    assert in_cohort(beta, low, False, frozenset())
    assert not in_cohort(beta, high, False, frozenset())
    assert in_cohort(beta, high, False, frozenset({"beta-testers"}))
    assert not in_cohort(beta, high, True, frozenset())  # premium alone is not beta
    prem = parse({"phase": "premium", "rolloutPercentage": 25})
    assert in_cohort(prem, high, True, frozenset())
    assert not in_cohort(prem, high, False, frozenset())
    assert in_cohort(parse({"phase": "full"}), high, False, frozenset())


def test_decision_table() -> None:
    high = _uid_in_bucket(lambda b: b == 99)
    full = parse({"phase": "full"})
    assert decide(full, high, True, frozenset(), Mode.FULL).access is Access.FULL
    assert decide(full, high, False, frozenset(), Mode.PREVIEW).access is Access.PREVIEW
    denied = decide(full, high, False, frozenset(), Mode.FULL)
    assert denied.access is Access.DENIED and denied.reason is Reason.PREMIUM_REQUIRED
    kill = parse({"phase": "full", "components": {"premiumGating": False}})
    off = decide(kill, high, False, frozenset(), Mode.FULL)
    assert off.access is Access.FULL and off.limit_tier.value == "premium"
    beta_fallback = parse({"phase": "beta", "rolloutPercentage": 1, "fallbackEnabled": True})
    outside = decide(beta_fallback, high, False, frozenset(), Mode.FULL)
    assert outside.access is Access.FULL and outside.reason is Reason.OUTSIDE_COHORT
    beta_strict = parse({"phase": "beta", "rolloutPercentage": 1, "fallbackEnabled": False})
    assert decide(beta_strict, high, False, frozenset(), Mode.FULL).denied


def test_a_period_end_without_a_timezone_is_taken_as_utc() -> None:
    doc = {
        "subscription": {
            "tier": "premium",
            "status": "active",
            "currentPeriodEnd": "2026-12-01T00:00:00",
        }
    }
    assert is_premium(doc, NOW, 3) is True

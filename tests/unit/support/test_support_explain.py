"""``support.py explain`` predicts what ``enrichCVWithExternalData`` then does, over the in-memory
store (the emulator suite does the same through the callable protocol); the changes are
audited; a complimentary grant is never a conversion."""

from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from common.errors import PermissionDenied, ResourceExhausted
from scripts import support
from stores.memory import MemoryStore
from tests.support.clock import FakeClock
from tests.support.doubles import seed_user, set_config
from usecases import conversions, enrich
from usecases.app import App
from usecases.context import Caller

ROOT = Path(__file__).resolve().parents[3]


def args(clock: FakeClock, **kw: Any) -> argparse.Namespace:
    return argparse.Namespace(now=clock.now, by="sam", reason="ticket 42", **kw)


def call(app: App, uid: str, mode: str = "full") -> dict[str, Any]:
    return enrich.run(app, Caller(uid), {"cvId": f"cv-{uid}", "mode": mode, "sources": ["github"]})


def audits(store: MemoryStore, kind: str) -> list[dict[str, Any]]:
    return [
        d
        for p, d in store.docs.items()
        if p.startswith("external_data_security_audit/") and d.get("type") == kind
    ]


def test_free_user_explained_then_served_the_same(svc: App, store: MemoryStore) -> None:
    set_config(store)
    seed_user(store, "fran")
    x = support.explain(svc, "fran", svc.now())
    assert (x["tier"], x["gated"], x["inCohort"]) == ("free", True, True)
    assert x["full"] == {"access": "denied", "reason": "premium_required"}
    assert x["preview"] == {"access": "preview", "reason": "free_preview"}
    assert (x["limit"], x["used"], x["remaining"]) == (3, 0, 3)
    with pytest.raises(PermissionDenied):
        call(svc, "fran")
    out = call(svc, "fran", "preview")
    assert out["access"] == "preview" and out["usage"]["remaining"] == x["remaining"] - 1
    after = support.explain(svc, "fran", svc.now())
    assert (after["used"], after["remaining"]) == (1, 2)
    # Both at the same fake instant: newest-first order cannot tell them apart.
    assert sorted(a["type"] for a in after["audit"]) == ["access_granted", "unauthorized_access"]


def test_exhausted_user_gets_the_predicted_next_slot(
    svc: App, store: MemoryStore, clock: FakeClock
) -> None:
    set_config(store)
    seed_user(store, "fran")
    for _ in range(3):
        call(svc, "fran", "preview")
        clock.advance(minutes=5)
    x = support.explain(svc, "fran", svc.now())
    assert x["remaining"] == 0
    with pytest.raises(ResourceExhausted) as refused:
        call(svc, "fran", "preview")
    assert refused.value.details is not None
    assert refused.value.details["resetAt"] == x["nextFreeSlot"]


def test_outside_the_cohort_with_fallback_is_full(svc: App, store: MemoryStore) -> None:
    set_config(store, phase="beta", rolloutPercentage=0, fallbackEnabled=True)
    seed_user(store, "olga")
    x = support.explain(svc, "olga", svc.now())
    assert x["full"] == {"access": "full", "reason": "outside_cohort"} and not x["inCohort"]
    assert x["limitTier"] == "premium" and x["limit"] == 100
    assert call(svc, "olga")["access"] == "full"


def test_past_due_in_grace_is_premium_with_days_left(svc: App, store: MemoryStore) -> None:
    set_config(store)
    seed_user(store, "pat")
    end = svc.now() - timedelta(days=1)
    store.docs["users/pat"]["subscription"] = {
        "tier": "premium",
        "status": "past_due",
        "currentPeriodEnd": end,
    }
    x = support.explain(svc, "pat", svc.now())
    assert x["tier"] == "premium" and "2.0 days left" in x["tierWhy"]
    assert call(svc, "pat")["access"] == "full"


def test_grant_and_revoke_are_audited_and_restore_the_old_subscription(
    svc: App, store: MemoryStore, clock: FakeClock
) -> None:
    seed_user(store, "gil")
    old = {"tier": "premium", "status": "canceled"}
    store.docs["users/gil"]["subscription"] = dict(old)
    until = clock.now + timedelta(days=30)
    assert support.cmd_grant(svc, args(clock, uid="gil", until=until)) == support.OK
    sub = store.docs["users/gil"]["subscription"]
    assert sub["complimentary"] is True and sub["currentPeriodEnd"] == until
    assert support.explain(svc, "gil", clock.now)["tier"] == "premium"
    assert support.cmd_revoke(svc, args(clock, uid="gil")) == support.OK
    assert store.docs["users/gil"]["subscription"] == old
    assert store.docs["users/gil"]["displayName"] == "gil"  # the rest of the profile stays
    entries = audits(store, support.CHANGE)
    assert sorted(e["action"] for e in entries) == ["grant", "revoke"]
    assert all(
        e["by"] == "sam" and e["reason"] == "ticket 42" and e["uid"] == "gil" for e in entries
    )


def test_a_paid_subscription_is_never_overwritten_or_revoked(
    svc: App, store: MemoryStore, clock: FakeClock
) -> None:
    seed_user(store, "pat", premium=True)
    until = clock.now + timedelta(days=30)
    with pytest.raises(support.Refused):
        support.cmd_grant(svc, args(clock, uid="pat", until=until))
    with pytest.raises(support.Refused):
        support.cmd_revoke(svc, args(clock, uid="pat"))
    with pytest.raises(support.NoUser):
        support.cmd_grant(svc, args(clock, uid="nobody", until=until))
    assert audits(store, support.CHANGE) == []


def test_a_complimentary_grant_is_never_a_conversion(
    svc: App, store: MemoryStore, clock: FakeClock
) -> None:
    seed_user(store, "gil")
    before = dict(store.docs["users/gil"])
    support.cmd_grant(svc, args(clock, uid="gil", until=clock.now + timedelta(days=3)))
    after = store.docs["users/gil"]
    assert conversions.subscription_changed(svc, "gil", before, after, "evt-1") is False


def test_reset_quota_empties_the_hour_and_groups_change(
    svc: App, store: MemoryStore, clock: FakeClock
) -> None:
    set_config(store)
    seed_user(store, "fran")
    for _ in range(3):
        call(svc, "fran", "preview")
    assert support.explain(svc, "fran", clock.now)["remaining"] == 0
    assert support.cmd_reset_quota(svc, args(clock, uid="fran")) == support.OK
    assert support.explain(svc, "fran", clock.now)["remaining"] == 3
    call(svc, "fran", "preview")
    ns = args(clock, action="add", names=["fran", "beta-testers"])
    assert support.cmd_groups(svc, ns) == support.OK
    assert store.docs["users/fran"]["rolloutGroups"] == ["beta-testers"]
    assert support.explain(svc, "fran", clock.now)["groups"] == ["beta-testers"]
    ns = args(clock, action="remove", names=["fran", "beta-testers"])
    assert support.cmd_groups(svc, ns) == support.OK
    assert store.docs["users/fran"]["rolloutGroups"] == []
    actions = sorted(e["action"] for e in audits(store, support.CHANGE))
    assert actions == ["groups add", "groups remove", "reset-quota"]


def test_scripts_run_from_any_python_and_crashes_are_not_refusals() -> None:
    """The README's `python scripts/...` works from an interpreter without the dependencies
    (it re-executes under .venv), and an unexpected error exits 70, never 1 (refused)."""
    system = "/usr/bin/python3"
    done = subprocess.run(  # noqa: S603 - fixed arguments
        [system, "scripts/support.py", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0 and "explain" in done.stdout, done.stderr
    crash = (
        "import sys; sys.modules['__main__'].__file__ = 'scripts/fake.py'; "
        "sys.path.insert(0, '.'); import scripts._venv; raise ValueError('boom')"
    )
    crashed = subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "-c", crash],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert crashed.returncode == 70 and "ValueError" in crashed.stderr

"""What each access decision records and which limit it applies (contract sections 3-5; found
by mutation testing, issue 13): the side of the cohort comparison a call is counted on (the
rollout evaluator's input), the limit tier, and shadow mode's would-be figures.
"""

from __future__ import annotations

from typing import Any

import pytest

from common.errors import ResourceExhausted
from common.settings import load_settings
from stores.memory import MemoryStore
from tests.support.aggregates import counter
from tests.support.clock import FakeClock
from tests.support.doubles import StaticEngine, seed_user, set_config
from usecases import enrich
from usecases.app import App
from usecases.context import Caller


def _sum(store: MemoryStore, path: str) -> int:
    """A counter summed over the hour buckets (``cohort.out.requests``, ``c.x``)."""
    return counter(store, path)


def _app(store: MemoryStore, env: dict[str, str] | None = None) -> App:
    return App(load_settings(env or {}), store, StaticEngine(), now=FakeClock(), rng=lambda n: 0)


def _sides(store: MemoryStore) -> tuple[int, int]:
    return _sum(store, "cohort.in.requests"), _sum(store, "cohort.out.requests")


@pytest.mark.parametrize(
    "config",
    [
        {"phase": "off", "rolloutPercentage": 0, "fallbackEnabled": True},
        {"phase": "full", "components": {"premiumGating": False}},  # the kill switch
        {"phase": "beta", "rolloutPercentage": 0, "fallbackEnabled": True},  # outside the cohort
    ],
)
def test_an_ungated_free_user_is_counted_outside_the_cohort_with_premium_sized_limits(
    config: dict[str, Any],
) -> None:
    store = MemoryStore()
    seed_user(store, "alice")
    set_config(store, **config)
    out = enrich.run(_app(store), Caller("alice"), {"cvId": "cv-alice", "mode": "preview"})
    assert out["access"] == "full"  # the pre-gating experience has no previews
    assert out["usage"]["tier"] == "free" and out["usage"]["limit"] == 100
    assert _sides(store) == (0, 1)
    assert _sum(store, "c.freeRequests") == 1 and _sum(store, "c.unauthorizedFull") == 0


def test_gated_users_are_counted_inside_the_cohort_with_their_own_limits() -> None:
    store = MemoryStore()
    seed_user(store, "alice")
    seed_user(store, "pat", premium=True)
    set_config(store)
    app = _app(store)
    free = enrich.run(app, Caller("alice"), {"cvId": "cv-alice", "mode": "preview"})
    paid = enrich.run(app, Caller("pat"), {"cvId": "cv-pat", "mode": "preview"})
    assert (free["usage"]["limit"], paid["usage"]["limit"]) == (3, 100)
    assert paid["access"] == "preview" and paid["usage"]["tier"] == "premium"
    assert _sides(store) == (2, 0)
    assert _sum(store, "c.premiumRequests") == 1 and _sum(store, "c.freeRequests") == 1


def test_shadow_counts_only_what_the_gate_would_have_done() -> None:
    store = MemoryStore()
    seed_user(store, "alice")
    seed_user(store, "pat", premium=True)
    seed_user(store, "out")
    # Beta at 0% with the target group: alice and pat are in the cohort, "out" is not.
    set_config(store, phase="beta", rolloutPercentage=0, fallbackEnabled=True, shadow=True)
    for uid in ("alice", "pat"):
        store.docs[f"users/{uid}"]["rolloutGroups"] = ["beta-testers"]
    app = _app(store)
    for uid, mode in (("out", "full"), ("out", "preview"), ("pat", "full"), ("pat", "preview")):
        answer = enrich.run(app, Caller(uid), {"cvId": f"cv-{uid}", "mode": mode})
        assert answer["access"] == "full" and "locked" not in answer["enrichedData"]
    assert _sum(store, "c.wouldPreview") == 0 and _sum(store, "c.wouldRefuse") == 0
    enrich.run(app, Caller("alice"), {"cvId": "cv-alice", "mode": "preview"})
    enrich.run(app, Caller("alice"), {"cvId": "cv-alice", "mode": "full"})
    assert _sum(store, "c.wouldPreview") == 1 and _sum(store, "c.wouldRefuse") == 1
    # Shadow serves the pre-gating experience: nobody counted inside the gate.
    assert _sides(store) == (0, 6)


def test_shadow_applies_premium_sized_limits_and_records_a_refusal_outside_the_cohort() -> None:
    store = MemoryStore()
    seed_user(store, "alice")
    set_config(store, shadow=True)  # phase full: alice would be gated
    app = _app(store, {"EXTERNAL_DATA_RATE_LIMIT_PREMIUM_HOURLY": "4"})
    for _ in range(4):  # more than the free limit of 3
        answer = enrich.run(app, Caller("alice"), {"cvId": "cv-alice"})
        assert answer["usage"]["limit"] == 4
    with pytest.raises(ResourceExhausted):
        enrich.run(app, Caller("alice"), {"cvId": "cv-alice"})
    assert _sides(store) == (0, 5)
    assert _sum(store, "c.wouldRefuse") == 5  # the gate was decided for the refused call too

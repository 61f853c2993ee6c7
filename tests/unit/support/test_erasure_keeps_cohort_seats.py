"""An erasure (contract 2.5) does not give back the user's ``maxCohortUsers`` seat (contract 3):
the cap counts distinct users for the whole phase, and a free user who could free their seat by
erasing their data would leave the gate and make the phase draw a seat it already drew. The seat
is kept under the keyed hash of the uid, so nothing after the erasure names the user."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from common.errors import PermissionDenied
from common.settings import load_settings
from scripts import support
from stores.memory import MemoryStore
from stores.schema import COHORT_MEMBERS
from tests.support.clock import FakeClock
from tests.support.doubles import StaticEngine, seed_user, set_config
from usecases import cohort, data_rights, enrich, stats
from usecases.app import App
from usecases.context import Caller

CAPPED = {"phase": "beta", "rolloutPercentage": 100, "fallbackEnabled": True, "maxCohortUsers": 2}


@pytest.fixture
def fresh(store: MemoryStore, engine: StaticEngine, clock: FakeClock) -> Callable[[], App]:
    """A new instance over the same store (nothing cached)."""
    return lambda: App(load_settings({}), store, engine, now=clock, rng=lambda n: 0)


def full(app: App, uid: str) -> str:
    try:
        enrich.run(app, Caller(uid), {"cvId": f"cv-{uid}", "sources": ["github"]})
    except PermissionDenied:
        return "gated"
    return "served"


def taken(store: MemoryStore) -> int:
    (counter,) = [d for p, d in store.docs.items() if p.count("/") == 1 and COHORT_MEMBERS in p]
    return int(counter["taken"])


def test_an_erased_user_keeps_their_seat_and_no_seat_is_drawn_again(
    store: MemoryStore, fresh: Callable[[], App]
) -> None:
    set_config(store, **CAPPED)
    for uid in ("alice", "bob", "carol"):
        seed_user(store, uid)
    app = fresh()
    assert full(app, "alice") == "gated"  # seat 1: inside the gate, free
    assert full(app, "bob") == "gated"  # seat 2
    out = data_rights.run_delete(app, Caller("alice"), {})
    seats = [p for p in store.docs if p.startswith(f"{COHORT_MEMBERS}/") and "/members/" in p]
    again = fresh()
    assert full(again, "alice") == "gated"  # still in her seat
    assert full(again, "carol") == "served"  # the cap is reached: carol stays outside
    assert taken(store) == 2
    assert COHORT_MEMBERS not in out["deleted"] and out["anonymised"][COHORT_MEMBERS] == 1
    hashed = app.recorder.hash("alice")
    assert sorted(p.rpartition("/")[2] for p in seats) == sorted(["bob", str(hashed)])
    data_rights.run_delete(again, Caller("alice"), {})  # only the kept seat names her now
    assert support._seat(again, again.config.current(), "alice") is True  # what explain says
    assert stats.run(fresh(), Caller("alice"), {})["hourly"]["limit"] == 3  # seated: free tier
    assert full(fresh(), "alice") == "gated" and taken(store) == 2


def test_a_seated_users_later_calls_read_no_more_than_before(
    store: MemoryStore, fresh: Callable[[], App], clock: FakeClock
) -> None:
    """Looking for a kept seat costs one read, on a user's first call of the phase only; a
    user with a seat pays what they paid before (one increment and one read, uncached)."""
    set_config(store, **CAPPED)
    seed_user(store, "alice")
    app = fresh()
    cfg = app.config.current()
    before = store.round_trips
    assert cohort.has_seat(app, cfg, "alice", clock()) is True
    first = store.round_trips - before  # increment, kept seat read, seat counter, commit
    later = fresh()
    before = store.round_trips
    assert cohort.has_seat(later, cfg, "alice", clock()) is True
    assert (first, store.round_trips - before) == (4, 2)

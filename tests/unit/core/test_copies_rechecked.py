"""Contract 2.1: only the owner may enrich a CV. An instance keeps a copy of each CV's owner
(so a warm call decides without a round trip), but never answers on it alone: the CV is read
again beside the call's increment. A CV deleted, or deleted and created again by another user,
a moment ago is obeyed by the very next call, which gives back the unit it took on the stale
copy. The user's entitlement copy is trusted for ``EXTERNAL_DATA_ENTITLEMENT_TTL_SECONDS``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from common.errors import NotFound, PermissionDenied, ResourceExhausted, Unavailable
from common.settings import load_settings
from stores.base import Fields
from stores.errors import StoreError
from stores.memory import MemoryStore
from tests.support.clock import FakeClock
from tests.support.doubles import StaticEngine, seed_user, set_config
from usecases import enrich
from usecases.app import App
from usecases.context import Caller

RESULT = "cvs/cv-pat/externalData/latest"


class Ordered(MemoryStore):
    """Notes, in order, when reads (by collection) and the rate limit's increment are sent
    and collected."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.fail_reads = False

    def start_get_many(
        self, paths: Sequence[str], deadline_s: float | None = None, fields: Fields | None = None
    ) -> Callable[[], dict[str, dict[str, Any] | None]]:
        what = ",".join(sorted(p.split("/")[0] for p in paths))
        self.events.append(f"read {what} sent")
        pending = super().start_get_many(paths, deadline_s, fields)

        def collect() -> dict[str, dict[str, Any] | None]:
            self.events.append(f"read {what} collected")
            if self.fail_reads:
                raise StoreError("read timed out")
            return pending()

        return collect

    def start_increment(
        self, path: str, field_name: str, by: int, extra: Mapping[str, Any]
    ) -> Callable[[], int]:
        self.events.append("increment sent")

        def collect() -> int:
            self.events.append("increment collected")
            return MemoryStore.increment(self, path, field_name, by, extra)

        return collect


def _app(store: MemoryStore, clock: FakeClock) -> App:
    return App(load_settings({}), store, StaticEngine(), now=clock, rng=lambda n: 0)


@pytest.fixture
def warm() -> tuple[Ordered, App, FakeClock]:
    """An instance that has served pat (premium, owner of cv-pat) once: it holds both copies."""
    store, clock = Ordered(), FakeClock()
    clock.advance(minutes=5)  # past the closed window's settling time
    seed_user(store, "pat", premium=True)
    set_config(store)
    app = _app(store, clock)
    assert enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})["usage"]["remaining"] == 99
    store.events.clear()
    return store, app, clock


def _units(store: MemoryStore) -> int:
    return sum(
        doc.get("count", 0) for path, doc in store.docs.items() if path.startswith("rate_limits/")
    )


def test_the_copies_are_read_again_beside_the_increment_not_before_it(warm: Any) -> None:
    store, app, _ = warm
    out = enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})
    assert out["access"] == "full" and out["usage"]["remaining"] == 98
    assert store.events == [
        "read cvs sent",
        "increment sent",
        "increment collected",
        "read cvs collected",
    ]
    assert _units(store) == 2  # one unit a call: nothing given back, nothing taken twice


def test_a_cv_deleted_a_moment_ago_is_not_found_and_its_unit_given_back(warm: Any) -> None:
    store, app, _ = warm
    del store.docs["cvs/cv-pat"]
    del store.docs[RESULT]  # what deleting a CV does (the onCvDeleted trigger)
    with pytest.raises(NotFound):
        enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})
    assert RESULT not in store.docs  # no result written under a deleted CV
    assert _units(store) == 1
    # The instance keeps no copy of the deleted CV's owner: the next call reads it first.
    store.events.clear()
    with pytest.raises(NotFound):
        enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})
    assert "increment sent" not in store.events


def test_a_cv_now_owned_by_someone_else_is_not_found_for_its_old_owner(warm: Any) -> None:
    store, app, _ = warm
    seed_user(store, "sam", premium=True)
    store.docs["cvs/cv-pat"] = {"userId": "sam"}
    with pytest.raises(NotFound):
        enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})
    assert enrich.run(app, Caller("sam"), {"cvId": "cv-pat"})["access"] == "full"


def test_a_held_owner_that_is_not_the_caller_is_read_once_not_again_beside(warm: Any) -> None:
    store, app, _ = warm
    seed_user(store, "sam", premium=True)
    store.docs["cvs/cv-pat"] = {"userId": "sam"}
    # The instance holds pat as the owner: sam's call reads the CV before refusing, finds sam,
    # and is decided on that read, which needs no second read beside the increment.
    assert enrich.run(app, Caller("sam"), {"cvId": "cv-pat"})["access"] == "full"
    assert "read cvs sent" not in store.events
    with pytest.raises(NotFound):
        enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})


def test_a_subscription_canceled_is_obeyed_when_the_entitlement_copy_expires(warm: Any) -> None:
    # The user's copy is not read again on every call (about 0.5 ms of machine CPU a call in
    # the load runs): a cancellation counts within EXTERNAL_DATA_ENTITLEMENT_TTL_SECONDS.
    store, app, clock = warm
    store.docs["users/pat"]["subscription"] = {"tier": "premium", "status": "canceled"}
    assert enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})["access"] == "full"
    clock.advance(seconds=app.settings.entitlement_ttl_seconds + 1)
    with pytest.raises(PermissionDenied) as err:
        enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})
    assert (err.value.details or {}).get("reason") == "premium_required"


def test_with_no_entitlement_copies_a_cancellation_counts_at_once() -> None:
    store, clock = Ordered(), FakeClock()
    seed_user(store, "pat", premium=True)
    set_config(store)
    env = {"EXTERNAL_DATA_ENTITLEMENT_TTL_SECONDS": "0"}
    app = App(load_settings(env), store, StaticEngine(), now=clock, rng=lambda n: 0)
    assert enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})["access"] == "full"
    store.docs["users/pat"]["subscription"] = {"tier": "premium", "status": "canceled"}
    with pytest.raises(PermissionDenied):
        enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})
    assert _units(store) == 1  # refused by the gate before the limit: no unit taken


def test_a_refusal_by_the_limit_decided_on_a_stale_copy_is_decided_again(warm: Any) -> None:
    # Over the premium limit on the held copies, but the CV was deleted meanwhile: the
    # contract's order says not-found, not resource-exhausted.
    store, app, _ = warm
    path = next(p for p in store.docs if p.startswith("rate_limits/"))
    store.docs[path]["count"] = 100
    with pytest.raises(ResourceExhausted):
        enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})
    assert _units(store) == 100  # the limiter gives a refusal's unit back itself
    del store.docs["cvs/cv-pat"]
    with pytest.raises(NotFound):
        enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})
    assert _units(store) == 100


def test_a_failed_re_read_answers_unavailable_and_gives_the_unit_back(warm: Any) -> None:
    store, app, _ = warm
    before = store.docs[RESULT]["requestId"]
    store.fail_reads = True
    with pytest.raises(Unavailable):
        enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})
    assert _units(store) == 1  # never answered on the copies alone, and no unit lost for it
    assert store.docs[RESULT]["requestId"] == before  # nothing served, nothing stored

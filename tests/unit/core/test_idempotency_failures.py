"""An ``idempotencyKey`` whose first call failed is not stuck (contract 2.1: a retry gets the
first answer again, or runs). A store that stops answering during the first call released the
key for ``GatingError`` only, and a release that failed too left the key "running" for the
record's hour: every retry waited ``WAIT_S`` (55 s) and answered ``unavailable``."""

from __future__ import annotations

from typing import Any

import pytest

from common.errors import InvalidArgument, Unavailable
from common.settings import load_settings
from stores.errors import StoreError
from stores.memory import MemoryStore
from stores.schema import idempotency_path
from tests.support.clock import FakeClock
from tests.support.doubles import StaticEngine, seed_user, set_config
from usecases import enrich, idempotency
from usecases.app import App
from usecases.context import Caller

REQUEST = {"cvId": "cv-pat", "idempotencyKey": "retry-key-0001"}


class Flaky(MemoryStore):
    """The in-memory store; ``down`` makes increments and commits raise (reads still answer)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def increment(self, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise StoreError("no answer")
        return super().increment(*args, **kwargs)

    def commit(self, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise StoreError("no answer")
        return super().commit(*args, **kwargs)


@pytest.fixture
def store() -> Flaky:
    s = Flaky()
    seed_user(s, "pat", premium=True)
    set_config(s)
    return s


@pytest.fixture
def app(store: Flaky, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> App:
    monkeypatch.setattr(idempotency, "WAIT_S", 0.3)  # a stuck key fails fast, not in 55 s
    return App(load_settings({}), store, StaticEngine(), now=clock, rng=lambda n: 0)


def _first_call_fails(app: App, store: Flaky) -> None:
    real = store.increment

    def once(*args: Any, **kwargs: Any) -> Any:
        store.increment = real  # type: ignore[method-assign]
        raise StoreError("no answer")

    store.increment = once  # type: ignore[method-assign]
    with pytest.raises(Unavailable):
        enrich.run(app, Caller("pat"), REQUEST)


def test_a_retry_after_a_store_failure_runs_at_once(app: App, store: Flaky) -> None:
    _first_call_fails(app, store)
    assert store.docs[idempotency_path("pat", REQUEST["idempotencyKey"])]["state"] == "released"
    answer = enrich.run(app, Caller("pat"), REQUEST)
    assert answer["status"] == "success"
    assert enrich.run(app, Caller("pat"), REQUEST) == answer  # and is kept for later retries


def test_a_claim_its_call_could_not_release_ends_with_its_lease(
    app: App, store: Flaky, clock: FakeClock
) -> None:
    real = store.increment

    def down_for_everything(*args: Any, **kwargs: Any) -> Any:
        store.down = True  # the release's write fails too
        raise StoreError("no answer")

    store.increment = down_for_everything  # type: ignore[method-assign]
    with pytest.raises(Unavailable):
        enrich.run(app, Caller("pat"), REQUEST)
    store.increment, store.down = real, False  # type: ignore[method-assign]
    assert store.docs[idempotency_path("pat", REQUEST["idempotencyKey"])]["state"] == "running"
    # Within the lease the first call might still be running: a retry waits, then is told so.
    clock.advance(seconds=30)
    with pytest.raises(Unavailable, match="still running"):
        enrich.run(app, Caller("pat"), REQUEST)
    # Past it (the function's timeout has passed), the retry claims the key and runs.
    clock.advance(seconds=idempotency.LEASE.total_seconds())
    assert enrich.run(app, Caller("pat"), REQUEST)["status"] == "success"


def test_a_key_whose_call_was_refused_serves_the_corrected_request(app: App, store: Flaky) -> None:
    """The first call was refused (a CV that is not the caller's) and released its key: it gave
    no answer, so the corrected request under the same key runs instead of being refused as a
    different request for the key's hour."""
    from common.errors import NotFound

    key = {"idempotencyKey": "fix-and-retry-01"}
    with pytest.raises(NotFound):
        enrich.run(app, Caller("pat"), {"cvId": "cv-typo", **key})
    answer = enrich.run(app, Caller("pat"), {"cvId": "cv-pat", **key})
    assert answer["status"] == "success"
    # Once answered, the key is used: another request under it is refused.
    with pytest.raises(InvalidArgument):
        enrich.run(app, Caller("pat"), {"cvId": "cv-typo", **key})

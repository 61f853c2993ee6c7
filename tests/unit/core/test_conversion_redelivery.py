"""A redelivered ``users/{uid}`` trigger records one conversion (contract section 5), even when
the two deliveries overlap: both read "no conversion yet" before either writes. The conversion
document is created if absent together with its aggregate counts, in one atomic write, so the
second delivery loses and counts nothing."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from common.settings import load_settings
from stores.base import Fields
from stores.errors import Contended
from stores.memory import MemoryStore
from tests.support.aggregates import counter
from tests.support.clock import FakeClock
from tests.support.doubles import StaticEngine, seed_user, set_config
from usecases import conversions
from usecases.app import App

FREE = {"subscription": {"tier": "free"}}
PREMIUM = {"subscription": {"tier": "premium", "status": "active"}}


class MeetAfterReading(MemoryStore):
    """Holds each reader of a conversion document until the other has read it too."""

    def __init__(self) -> None:
        super().__init__()
        self.barrier = threading.Barrier(2, timeout=5)

    def get_many(
        self, paths: Sequence[str], fields: Fields | None = None
    ) -> dict[str, dict[str, Any] | None]:
        got = super().get_many(paths, fields)
        if any("/conversions/" in p for p in paths):
            self.barrier.wait()
        return got


def test_overlapping_deliveries_of_one_event_count_one_conversion() -> None:
    store = MeetAfterReading()
    app = App(load_settings({}), store, StaticEngine(), now=FakeClock(), rng=lambda n: 0)
    set_config(store)
    seed_user(store, "ann")
    recorded: list[bool] = []
    lock = threading.Lock()

    def deliver() -> None:
        done = conversions.subscription_changed(app, "ann", FREE, PREMIUM, "evt-ann-1")
        with lock:
            recorded.append(done)

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(recorded) == [False, True]
    assert len([p for p in store.docs if "/conversions/" in p]) == 1
    assert counter(store, "c.conversions", "h") == 1
    assert counter(store, "cohort.in.conversions", "h") == 1


def test_a_later_redelivery_still_records_nothing() -> None:
    store = MemoryStore()
    app = App(load_settings({}), store, StaticEngine(), now=FakeClock(), rng=lambda n: 0)
    set_config(store)
    seed_user(store, "ann")
    assert conversions.subscription_changed(app, "ann", FREE, PREMIUM, "evt-ann-1") is True
    assert conversions.subscription_changed(app, "ann", FREE, PREMIUM, "evt-ann-1") is False
    assert counter(store, "c.conversions", "h") == 1


class AbortedOnce(MemoryStore):
    """The first create-if-absent is aborted before anything lands (Firestore's ``Contended``:
    two racing transactions can both be aborted)."""

    def __init__(self) -> None:
        super().__init__()
        self.aborted = 0

    def compare_and_set(
        self, path: str, expected_version: int, data: Any, extra: Sequence[Any]
    ) -> None:
        if not self.aborted:
            self.aborted += 1
            raise Contended("aborted")
        super().compare_and_set(path, expected_version, data, extra)


def test_an_aborted_transaction_is_made_again_not_taken_for_a_redelivery() -> None:
    store = AbortedOnce()
    app = App(load_settings({}), store, StaticEngine(), now=FakeClock(), rng=lambda n: 0)
    set_config(store)
    seed_user(store, "ann")
    assert conversions.subscription_changed(app, "ann", FREE, PREMIUM, "evt-ann-1") is True
    assert store.aborted == 1 and counter(store, "c.conversions", "h") == 1

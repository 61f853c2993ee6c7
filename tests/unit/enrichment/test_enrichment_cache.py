"""Cache stores: one behaviour suite for the in-process cache and the cache over the store
layer, the latter on the in-memory store here and on the Firestore emulator when
``FIRESTORE_EMULATOR_HOST`` is set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from enrichment.cache import CacheEntry, CacheStore, MemoryCacheStore, StoreCacheStore, cache_key
from enrichment.held import HeldCacheStore
from stores.memory import MemoryStore
from tests.support.clock import FakeClock
from tests.support.emulated import firestore_emulator
from tests.unit.enrichment.helpers import T0


def _held(shared: CacheStore) -> CacheStore:
    """What an instance uses: the shared cache behind the entries it holds (at ``T0``, when
    ``ENTRY`` is fresh)."""
    return HeldCacheStore(shared, timedelta(seconds=60), FakeClock(T0))


def _stores() -> Iterator[Any]:  # pytest.param values (ParameterSet is not public)
    yield pytest.param(lambda: MemoryCacheStore(), id="memory")
    yield pytest.param(lambda: StoreCacheStore(MemoryStore()), id="document-store-memory")
    yield pytest.param(lambda: _held(StoreCacheStore(MemoryStore())), id="held-memory")
    if firestore_emulator():

        def emulator() -> CacheStore:
            from stores.firestore import FirestoreStore, make_client

            return StoreCacheStore(FirestoreStore(make_client()))

        yield pytest.param(emulator, id="document-store-firestore-emulator")
        yield pytest.param(lambda: _held(emulator()), id="held-firestore-emulator")


ENTRY = CacheEntry(
    payload={"repos": [{"name": "a", "stars": 3}], "profile": {"login": "x"}},
    fetched_at=T0,
    expire_at=T0 + timedelta(hours=1),
    etag='{"u": "W/\\"1\\""}',
)


@pytest.mark.parametrize("make", list(_stores()))
class TestCacheStore:
    def test_miss_then_hit(self, make: Callable[[], CacheStore]) -> None:
        store = make()
        key = cache_key("github", "octocat-" + os.urandom(4).hex())
        assert store.get(key) is None
        store.put(key, ENTRY)
        got = store.get(key)
        assert got is not None
        assert got.payload == ENTRY.payload and got.etag == ENTRY.etag
        assert got.expire_at == ENTRY.expire_at and got.fetched_at == ENTRY.fetched_at

    def test_get_many_reads_several_in_one_call(self, make: Callable[[], CacheStore]) -> None:
        store = make()
        a, b = (cache_key("github", f"{n}-" + os.urandom(4).hex()) for n in "ab")
        store.put(a, ENTRY)
        got = store.get_many([a, b])
        assert set(got) == {a, b} and got[b] is None
        hit = got[a]
        assert hit is not None and hit.payload == ENTRY.payload

    def test_put_replaces(self, make: Callable[[], CacheStore]) -> None:
        store = make()
        key = cache_key("web", "brave:ada " + os.urandom(4).hex())
        store.put(key, ENTRY)
        store.put(key, CacheEntry({"results": []}, T0, T0))
        got = store.get(key)
        assert got is not None and got.payload == {"results": []}

    def test_stale_entries_are_returned_for_revalidation(
        self, make: Callable[[], CacheStore]
    ) -> None:
        store = make()
        key = cache_key("github", "stale-" + os.urandom(4).hex())
        store.put(key, ENTRY)
        got = store.get(key)
        assert got is not None and not got.is_fresh(T0 + timedelta(hours=2)) and got.etag


def test_document_shape() -> None:
    db = MemoryStore()
    key = cache_key("github", "octocat")
    StoreCacheStore(db).put(key, ENTRY)
    doc = db.docs[f"external_data_cache/{key}"]
    assert set(doc) == {"source", "key", "payload", "etag", "fetchedAt", "expireAt"}
    assert doc["source"] == "github" and doc["expireAt"] == ENTRY.expire_at
    assert json.loads(doc["payload"]) == ENTRY.payload  # a string: no per-field indexing


def test_payloads_too_large_for_a_document_are_not_cached() -> None:
    db = MemoryStore()
    StoreCacheStore(db).put("github_x", CacheEntry({"blob": "x" * 1_000_000}, T0, T0))
    assert not [p for p in db.docs if p.startswith("external_data_cache/")]


def test_unreadable_document_is_a_miss() -> None:
    db = MemoryStore()
    db.docs["external_data_cache/github_x"] = {"payload": "{not json"}
    assert StoreCacheStore(db).get("github_x") is None


def test_key_is_source_and_sha256() -> None:
    assert cache_key("github", "octocat") == (
        "github_" + __import__("hashlib").sha256(b"octocat").hexdigest()
    )


class _Counting(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.commits = 0

    def commit(self, writes: Any) -> None:
        self.commits += 1
        super().commit(writes)


def test_an_unchanged_answer_is_rewritten_by_an_instance_at_most_once_a_minute() -> None:
    """A popular input refreshed by many callers must not write one document several times a
    second (Firestore sustains about one): same answer within a minute → no write."""
    from enrichment.cache import REWRITE_AFTER_S

    db, ticks = _Counting(), [100.0]
    cache = StoreCacheStore(db, clock=lambda: ticks[0])
    key = cache_key("github", "torvalds")
    later = CacheEntry(ENTRY.payload, T0 + timedelta(seconds=5), ENTRY.expire_at, ENTRY.etag)
    cache.put(key, ENTRY)
    ticks[0] += REWRITE_AFTER_S - 0.1
    cache.put(key, later)  # the same answer, 59.9 s later: not written
    assert db.commits == 1
    stored = cache.get(key)
    assert stored is not None and stored.fetched_at == T0
    changed = CacheEntry({"repos": []}, T0, ENTRY.expire_at, ENTRY.etag)
    cache.put(key, changed)  # a different answer: written at once
    assert db.commits == 2
    cache.put(key, CacheEntry({"repos": []}, T0, ENTRY.expire_at, "other-etag"))
    assert db.commits == 3  # a new validator is a change too
    ticks[0] += REWRITE_AFTER_S
    cache.put(key, CacheEntry({"repos": []}, T0, ENTRY.expire_at, "other-etag"))
    assert db.commits == 4  # a minute on: written again (freshness moves on)
    other = cache_key("github", "gvanrossum")
    cache.put(other, ENTRY)
    assert db.commits == 5  # per entry, not per instance


def test_a_failed_write_is_not_remembered_as_written() -> None:
    from stores.errors import StoreError

    class Failing(_Counting):
        down = True

        def commit(self, writes: Any) -> None:
            if self.down:
                raise StoreError("down")
            super().commit(writes)

    db = Failing()
    cache = StoreCacheStore(db, clock=lambda: 0.0)
    key = cache_key("github", "octocat")
    with pytest.raises(StoreError):
        cache.put(key, ENTRY)
    db.down = False
    cache.put(key, ENTRY)
    assert db.commits == 1 and cache.get(key) is not None


def test_simultaneous_refreshes_of_one_input_write_it_once() -> None:
    import threading

    class Slow(_Counting):
        def commit(self, writes: Any) -> None:
            gate.wait(5)
            super().commit(writes)

    gate = threading.Event()
    db = Slow()
    cache = StoreCacheStore(db)
    key = cache_key("linkedin", "export")
    threads = [threading.Thread(target=cache.put, args=(key, ENTRY)) for _ in range(8)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert db.commits == 1

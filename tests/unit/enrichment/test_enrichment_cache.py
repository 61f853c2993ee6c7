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
from stores.memory import MemoryStore
from tests.unit.enrichment.helpers import T0


def _stores() -> Iterator[Any]:  # pytest.param values (ParameterSet is not public)
    yield pytest.param(lambda: MemoryCacheStore(), id="memory")
    yield pytest.param(lambda: StoreCacheStore(MemoryStore()), id="document-store-memory")
    if os.environ.get("FIRESTORE_EMULATOR_HOST"):

        def emulator() -> CacheStore:
            from stores.firestore import FirestoreStore, make_client

            return StoreCacheStore(FirestoreStore(make_client()))

        yield pytest.param(emulator, id="document-store-firestore-emulator")


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

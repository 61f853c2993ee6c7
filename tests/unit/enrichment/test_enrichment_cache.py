"""Cache stores: one behaviour suite for the in-memory and the Firestore implementation.

The Firestore store runs against a minimal in-process double of the client API it uses
(``collection().document().get()/set()``) here, and against the emulator when
``FIRESTORE_EMULATOR_HOST`` is set.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

import pytest

from enrichment.cache import CacheEntry, FirestoreCacheStore, MemoryCacheStore, cache_key
from tests.unit.enrichment.helpers import T0


class _Snap:
    def __init__(self, data: dict[str, Any] | None, key: str = "") -> None:
        self._data = data
        self.exists = data is not None
        self.id = key

    def to_dict(self) -> dict[str, Any] | None:
        return None if self._data is None else dict(self._data)


class _Doc:
    def __init__(self, store: dict[str, dict[str, Any]], key: str) -> None:
        self._store, self._key = store, key

    def get(self) -> _Snap:
        return _Snap(self._store.get(self._key), self._key)

    def set(self, data: dict[str, Any]) -> None:
        self._store[self._key] = dict(data)


class FakeFirestore:
    """Just the calls FirestoreCacheStore makes."""

    def __init__(self) -> None:
        self.collections: dict[str, dict[str, dict[str, Any]]] = {}

    def collection(self, name: str) -> Any:
        store = self.collections.setdefault(name, {})

        class _Col:
            def document(self, key: str) -> _Doc:
                return _Doc(store, key)

        return _Col()

    def get_all(self, refs: list[_Doc]) -> list[_Snap]:
        return [r.get() for r in refs]


def _stores():
    yield pytest.param(lambda: MemoryCacheStore(), id="memory")
    yield pytest.param(lambda: FirestoreCacheStore(FakeFirestore()), id="firestore-double")
    if os.environ.get("FIRESTORE_EMULATOR_HOST"):

        def emulator():
            from stores.firestore import make_client

            return FirestoreCacheStore(make_client())

        yield pytest.param(emulator, id="firestore-emulator")


ENTRY = CacheEntry(
    payload={"repos": [{"name": "a", "stars": 3}], "profile": {"login": "x"}},
    fetched_at=T0,
    expire_at=T0 + timedelta(hours=1),
    etag='{"u": "W/\\"1\\""}',
)


@pytest.mark.parametrize("make", list(_stores()))
class TestCacheStore:
    def test_miss_then_hit(self, make):
        store = make()
        key = cache_key("github", "octocat-" + os.urandom(4).hex())
        assert store.get(key) is None
        store.put(key, ENTRY)
        got = store.get(key)
        assert got.payload == ENTRY.payload and got.etag == ENTRY.etag
        assert got.expire_at == ENTRY.expire_at and got.fetched_at == ENTRY.fetched_at

    def test_get_many_reads_several_in_one_call(self, make):
        store = make()
        a, b = (cache_key("github", f"{n}-" + os.urandom(4).hex()) for n in "ab")
        store.put(a, ENTRY)
        got = store.get_many([a, b])
        assert set(got) == {a, b} and got[b] is None
        assert got[a].payload == ENTRY.payload

    def test_put_replaces(self, make):
        store = make()
        key = cache_key("web", "brave:ada " + os.urandom(4).hex())
        store.put(key, ENTRY)
        store.put(key, CacheEntry({"results": []}, T0, T0))
        assert store.get(key).payload == {"results": []}

    def test_stale_entries_are_returned_for_revalidation(self, make):
        store = make()
        key = cache_key("github", "stale-" + os.urandom(4).hex())
        store.put(key, ENTRY)
        got = store.get(key)
        assert not got.is_fresh(T0 + timedelta(hours=2)) and got.etag


def test_firestore_document_shape():
    db = FakeFirestore()
    key = cache_key("github", "octocat")
    FirestoreCacheStore(db).put(key, ENTRY)
    doc = db.collections["external_data_cache"][key]
    assert set(doc) == {"source", "key", "payload", "etag", "fetchedAt", "expireAt"}
    assert doc["source"] == "github" and doc["expireAt"] == ENTRY.expire_at
    assert json.loads(doc["payload"]) == ENTRY.payload  # a string: no per-field indexing


def test_firestore_skips_payloads_too_large_for_a_document():
    db = FakeFirestore()
    FirestoreCacheStore(db).put("github_x", CacheEntry({"blob": "x" * 1_000_000}, T0, T0))
    assert db.collections["external_data_cache"] == {}


def test_unreadable_firestore_document_is_a_miss():
    db = FakeFirestore()
    db.collection("external_data_cache").document("github_x").set({"payload": "{not json"})
    assert FirestoreCacheStore(db).get("github_x") is None


def test_key_is_source_and_sha256():
    assert cache_key("github", "octocat") == (
        "github_" + __import__("hashlib").sha256(b"octocat").hexdigest()
    )

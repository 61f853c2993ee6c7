"""Issue 11: an instance answers the fresh cache entries it read or wrote again without a round
trip, for at most ``EXTERNAL_DATA_CACHE_HOLD_SECONDS`` and never past the entry's own expiry;
stale entries, misses and ``forceRefresh`` still go to the shared cache."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from common.settings import EnrichmentSettings
from enrichment.cache import CacheEntry, MemoryCacheStore, StoreCacheStore, cache_key
from enrichment.engine import EnrichmentInput
from enrichment.held import HeldCacheStore, instance_cache
from enrichment.sources.linkedin import LinkedInSource
from stores.memory import MemoryStore
from tests.support.clock import FakeClock
from tests.unit.enrichment.helpers import T0, make_engine

HOLD = timedelta(seconds=60)
KEY_A, KEY_B = cache_key("github", "a"), cache_key("github", "b")


def _entry(fresh_for: timedelta = timedelta(hours=1), **payload: Any) -> CacheEntry:
    return CacheEntry(payload or {"n": 1}, T0 - timedelta(minutes=1), T0 + fresh_for)


class Counted(MemoryCacheStore):
    """The shared cache, noting the keys of each read and refusing puts when told."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[list[str]] = []
        self.refuse_puts = False

    def get_many(self, keys: list[str]) -> dict[str, CacheEntry | None]:
        self.reads.append(list(keys))
        return super().get_many(keys)

    def put(self, key: str, entry: CacheEntry) -> None:
        if self.refuse_puts:
            raise OSError("store down")
        super().put(key, entry)


def _held(budget_chars: int = 1_000_000) -> tuple[HeldCacheStore, Counted, FakeClock]:
    shared, clock = Counted(), FakeClock(T0)
    return HeldCacheStore(shared, HOLD, clock, budget_chars=budget_chars), shared, clock


def test_a_fresh_entry_read_once_is_answered_again_without_a_read() -> None:
    held, shared, _ = _held()
    MemoryCacheStore.put(shared, KEY_A, _entry())
    first = held.start_get_many([KEY_A], 1.0)()
    again = held.start_get_many([KEY_A], 1.0)()
    assert first == again == {KEY_A: _entry()}
    assert held.get(KEY_A) == _entry() and held.get_many([KEY_A]) == {KEY_A: _entry()}
    assert shared.reads == [[KEY_A]]


def test_only_the_keys_not_held_are_read_and_the_answer_keeps_the_callers_keys() -> None:
    held, shared, _ = _held()
    MemoryCacheStore.put(shared, KEY_A, _entry(n=1))
    MemoryCacheStore.put(shared, KEY_B, _entry(n=2))
    held.get(KEY_A)
    missing = cache_key("github", "missing")
    got = held.start_get_many([KEY_B, KEY_A, missing, KEY_B], 1.0)()
    assert list(got) == [KEY_B, KEY_A, missing]
    assert got[KEY_A] == _entry(n=1) and got[KEY_B] == _entry(n=2) and got[missing] is None
    assert shared.reads == [[KEY_A], [KEY_B, missing]]
    held.get_many([missing])
    assert shared.reads[-1] == [missing], "a miss is not held: it is read again"


def test_the_hold_ends_after_its_time_and_the_entry_is_read_again() -> None:
    held, shared, clock = _held()
    MemoryCacheStore.put(shared, KEY_A, _entry(n=1))
    held.get(KEY_A)
    MemoryCacheStore.put(shared, KEY_A, _entry(n=2))  # another instance refreshed it
    clock.advance(seconds=59)
    assert held.get(KEY_A) == _entry(n=1), "held: at most the hold behind the shared cache"
    clock.advance(seconds=1)
    assert held.get(KEY_A) == _entry(n=2)
    assert len(shared.reads) == 2


def test_an_entry_is_held_no_longer_than_it_is_fresh_and_a_stale_one_never() -> None:
    held, shared, clock = _held()
    MemoryCacheStore.put(shared, KEY_A, _entry(fresh_for=timedelta(seconds=5)))
    MemoryCacheStore.put(shared, KEY_B, _entry(fresh_for=timedelta(seconds=-1)))
    held.get_many([KEY_A, KEY_B])
    held.get_many([KEY_A, KEY_B])
    assert shared.reads == [[KEY_A, KEY_B], [KEY_B]], "the stale entry is read every time"
    clock.advance(seconds=5)
    held.get_many([KEY_A])
    assert shared.reads[-1] == [KEY_A], "held until its expiry, not for the whole hold"


def test_a_put_is_held_once_the_shared_cache_took_it() -> None:
    held, shared, _ = _held()
    held.put(KEY_A, _entry(n=1))
    assert held.get(KEY_A) == _entry(n=1) and shared.reads == []
    shared.refuse_puts = True
    with pytest.raises(OSError, match="store down"):
        held.put(KEY_A, _entry(n=2))
    assert held.get(KEY_A) == _entry(n=1) == shared.get(KEY_A), "what it did not take is not held"
    assert shared.reads == []


def test_a_read_sent_before_a_refresh_was_written_does_not_replace_it() -> None:
    held, shared, _ = _held()
    MemoryCacheStore.put(shared, KEY_A, _entry(n=1))
    collect = held.start_get_many([KEY_A], 1.0)  # in flight (collected below)
    newer = CacheEntry({"n": 2}, T0, T0 + timedelta(hours=1))  # fetched after the entry read
    held.put(KEY_A, newer)
    MemoryCacheStore.put(shared, KEY_A, _entry(n=1))  # the read answers the older copy
    assert collect()[KEY_A] == _entry(n=1), "the caller gets what its read found"
    assert held.get(KEY_A) == newer and shared.reads == [[KEY_A]]


def test_the_held_entries_stay_within_their_budget_least_recently_used_out_first() -> None:
    size = len('{"n":1}')  # each entry's payload as stored JSON
    held, shared, _ = _held(budget_chars=16 * size)  # an entry may be a sixteenth
    keys = [cache_key("github", str(i)) for i in range(17)]
    for key in keys[:16]:
        held.put(key, _entry(n=1))
    held.get(keys[0])  # used: the second is now the least recently used
    held.put(keys[16], _entry(n=1))
    assert len(held) == 16
    held.get_many([keys[0], keys[2], keys[16]])
    assert shared.reads == [], "the used and the newest stay held"
    held.get(keys[1])
    assert shared.reads == [[keys[1]]], "the least recently used was let go"
    held.put(KEY_B, _entry(n=123))  # over a sixteenth of the budget
    held.get(KEY_B)
    assert shared.reads[-1] == [KEY_B]


def test_stored_sizes_are_counted_from_the_documents_read() -> None:
    shared = StoreCacheStore(MemoryStore())
    shared.put(KEY_A, _entry(text="x" * 100))
    read = shared.get(KEY_A)
    assert read is not None and read.stored_chars == len('{"text":"' + "x" * 100 + '"}')
    assert read == _entry(text="x" * 100), "the size does not take part in equality"


def test_a_put_is_weighed_by_the_json_the_shared_cache_encoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared = StoreCacheStore(MemoryStore())
    held = HeldCacheStore(shared, HOLD, FakeClock(T0))
    encoded: list[object] = []
    real = json.dumps

    def dumps(obj: object, **kw: Any) -> str:
        encoded.append(obj)
        return real(obj, **kw)

    monkeypatch.setattr(json, "dumps", dumps)
    assert held.put(KEY_A, _entry(text="x" * 100)) == len('{"text":"' + "x" * 100 + '"}')
    assert len(encoded) == 1, "the payload is encoded once, by the shared cache"
    held_entry = held.get(KEY_A)
    assert held_entry is not None and held_entry.stored_chars == len(
        real(_entry(text="x" * 100).payload, separators=(",", ":"))
    )


def test_an_instance_holds_for_its_setting_and_not_at_all_at_zero() -> None:
    store = MemoryStore()
    held = instance_cache(store, EnrichmentSettings(cache_hold_seconds=30))
    assert isinstance(held, HeldCacheStore) and held.hold == timedelta(seconds=30)
    assert isinstance(held.inner, StoreCacheStore)
    assert isinstance(
        instance_cache(store, EnrichmentSettings(cache_hold_seconds=0)), StoreCacheStore
    )
    assert EnrichmentSettings().cache_hold_seconds == 60


SKILLS = {"Skills.csv": "Name\nPython\nGo\n"}


def test_a_warm_enrichment_reads_no_cache_and_a_forced_refresh_replaces_what_is_held() -> None:
    shared, clock = Counted(), FakeClock(T0)
    held = HeldCacheStore(shared, HOLD, clock)
    engine = make_engine(clock=clock, cache=held, sources={"linkedin": LinkedInSource()})
    inp = EnrichmentInput(sources=("linkedin",), linkedin_export=SKILLS)
    first = engine.enrich(inp, engine.read_ahead(inp))
    assert first.sources[0].cached is False and len(shared.reads) == 1
    for _ in range(3):
        warm = engine.enrich(inp, engine.read_ahead(inp))
        assert warm.sources[0].cached is True and warm.data == first.data
        assert engine.from_cache(engine.read_ahead(inp)) is not None
    assert len(shared.reads) == 1, "warm calls answered from what the instance holds"
    clock.advance(seconds=10)
    forced = EnrichmentInput(sources=("linkedin",), linkedin_export=SKILLS, force_refresh=True)
    assert engine.enrich(forced, engine.read_ahead(forced)).sources[0].cached is False
    (key,) = shared._entries  # the one entry, rewritten by the forced refresh
    now_held = held.get(key)
    assert now_held is not None and now_held.fetched_at == T0 + timedelta(seconds=10)
    assert now_held == shared.get(key) and len(shared.reads) == 1, "held without a read"

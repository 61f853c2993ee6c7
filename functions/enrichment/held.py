"""Fresh cache entries an instance read or wrote, answered again without a round trip for a
short while (``EXTERNAL_DATA_CACHE_HOLD_SECONDS``, the same trust an instance gives a cached
entitlement or CV owner).

A warm call otherwise reads its sources' cache documents on every call, one Firestore read and
round trip each, to learn what the instance read seconds ago. Held entries are only fresh
ones, each until its own ``expireAt`` or the hold runs out, whichever is first: a stale entry
is read again (another instance may have revalidated it), and ``forceRefresh`` never reads the
cache. What a hold can cost: after another instance refreshes an input, this one may answer
the entry it holds for at most the hold. LinkedIn answers depend on nothing but their input,
so for them it costs nothing at all.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from common.clock import Clock, utcnow
from common.settings import EnrichmentSettings
from stores.base import DocumentStore

from .cache import CacheEntry, CacheStore, StoreCacheStore

HELD_CHARS = 4_000_000
"""Payload characters (as stored JSON) one instance holds at most; least recently used first
out. An entry over a sixteenth of it is never held. Decoded, JSON of this kind takes several
times its text in memory: a few tens of MB of the function's 512 MiB at most."""


class HeldCacheStore:
    """A ``CacheStore`` in front of another, holding the fresh entries it passed."""

    def __init__(
        self,
        inner: CacheStore,
        hold: timedelta,
        now: Clock,
        *,
        budget_chars: int = HELD_CHARS,
    ) -> None:
        self.inner = inner
        self.hold = hold
        self._now = now
        self._budget = budget_chars
        self._held: OrderedDict[str, tuple[datetime, CacheEntry, int]] = OrderedDict()
        """key → (held until, entry, its weight in characters)."""
        self._chars = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> CacheEntry | None:
        """See ``CacheStore.get``."""
        return self.get_many([key])[key]

    def get_many(self, keys: list[str]) -> dict[str, CacheEntry | None]:
        """See ``CacheStore.get_many``: held entries answered here, the others read."""
        held, missing = self._split(keys)
        got = self.inner.get_many(missing) if missing else {}
        return self._merge(keys, held, got)

    def start_get_many(
        self, keys: list[str], deadline_s: float
    ) -> Callable[[], dict[str, CacheEntry | None]]:
        """See ``CacheStore.start_get_many``: nothing is sent when every entry is held."""
        held, missing = self._split(keys)
        if not missing:
            return lambda: dict(held)
        pending = self.inner.start_get_many(missing, deadline_s)
        return lambda: self._merge(keys, held, pending())

    def put(self, key: str, entry: CacheEntry) -> int | None:
        """See ``CacheStore.put``: held once the store took it (weighed by the JSON the store
        encoded, when it says)."""
        chars = self.inner.put(key, entry)
        self._hold(key, entry if chars is None else replace(entry, stored_chars=chars))
        return chars

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)

    def _split(self, keys: list[str]) -> tuple[dict[str, CacheEntry | None], list[str]]:
        now = self._now()
        held: dict[str, CacheEntry | None] = {}
        with self._lock:
            for key in keys:
                item = self._held.get(key)
                if item is not None and now < item[0]:
                    held[key] = item[1]
                    self._held.move_to_end(key)
                elif item is not None:
                    self._forget(key)
        return held, [k for k in dict.fromkeys(keys) if k not in held]

    def _merge(
        self,
        keys: list[str],
        held: dict[str, CacheEntry | None],
        got: dict[str, CacheEntry | None],
    ) -> dict[str, CacheEntry | None]:
        for key, entry in got.items():
            if entry is not None:
                self._hold(key, entry, read=True)
        return {k: held[k] if k in held else got.get(k) for k in keys}

    def _hold(self, key: str, entry: CacheEntry, *, read: bool = False) -> None:
        """Hold ``entry`` while it is fresh, for at most ``hold``, in place of the one held. A
        ``read`` entry older than the one held is not: a read sent before this instance's own
        refresh was written may come back after it."""
        now = self._now()
        until = min(now + self.hold, entry.expire_at)
        weight = _weight(entry)
        with self._lock:
            held = self._held.get(key)
            if read and held is not None and held[1].fetched_at > entry.fetched_at:
                return
            self._forget(key)
            if until <= now or weight > self._budget // 16:
                return
            self._held[key] = (until, entry, weight)
            self._chars += weight
            while self._chars > self._budget:
                self._forget(next(iter(self._held)))

    def _forget(self, key: str) -> None:
        item = self._held.pop(key, None)
        if item is not None:
            self._chars -= item[2]


def _weight(entry: CacheEntry) -> int:
    """The entry's payload in stored characters (counted by the store that read or wrote it;
    encoded here only behind a store that does not say)."""
    if entry.stored_chars is not None:
        return entry.stored_chars
    return len(json.dumps(entry.payload, separators=(",", ":"), ensure_ascii=False))


def instance_cache(store: DocumentStore, settings: EnrichmentSettings) -> CacheStore:
    """The cache an instance's engine uses: ``external_data_cache`` documents, with the fresh
    entries it passed held for ``cache_hold_seconds`` (none held at 0)."""
    shared = StoreCacheStore(store)
    if settings.cache_hold_seconds <= 0:
        return shared
    return HeldCacheStore(shared, timedelta(seconds=settings.cache_hold_seconds), utcnow)

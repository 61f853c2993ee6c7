"""Cache of source answers, keyed by source + normalised input (never by user).

Stores return entries whether fresh or not: freshness is the engine's decision, because an
expired GitHub entry still carries ETags for a conditional request. Firestore deletes expired
documents by itself (TTL policy on ``expireAt``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from stores.base import DocumentStore, Write
from stores.schema import cache_path

log = logging.getLogger(__name__)

MAX_PAYLOAD_CHARS = 900_000
"""Firestore documents hold 1 MiB at most; larger answers are simply not cached."""
REWRITE_AFTER_S = 60.0
"""An instance writes an unchanged answer to the same entry at most once a minute: a popular
input refreshed by many callers (``forceRefresh`` on a well-known GitHub login) would otherwise
write one document several times a second, past Firestore's sustained one write a second."""
_REMEMBERED = 4096
"""Entries whose last write an instance remembers (least recently written forgotten first)."""


@dataclass(frozen=True)
class CacheEntry:
    """One cached source answer."""

    payload: dict[str, Any]
    """The source's (already redacted) data, as returned in ``enrichedData[source]``."""
    fetched_at: datetime
    """When the payload was fetched (or last revalidated)."""
    expire_at: datetime
    """After this the entry is stale: not served, but its ``etag`` may revalidate it."""
    etag: str | None = None
    """Validator(s) for conditional requests (GitHub: JSON map of URL to ETag)."""
    stored_chars: int | None = field(default=None, compare=False)
    """The payload's length as stored JSON, when the store that read it knows it."""

    def is_fresh(self, now: datetime) -> bool:
        """True while the entry may be served without asking upstream."""
        return now < self.expire_at


class CacheStore(Protocol):
    """Where source answers are kept between requests."""

    def get(self, key: str) -> CacheEntry | None:
        """The entry for ``key`` (fresh or stale), or None."""
        ...

    def put(self, key: str, entry: CacheEntry) -> int | None:
        """Store or replace the entry for ``key``; the payload's length as stored JSON, when
        the store encoded it (a store in front, ``enrichment.held``, weighs entries by it)."""
        ...

    def get_many(self, keys: list[str]) -> dict[str, CacheEntry | None]:
        """Several entries in one round trip (missing or undecodable ones map to ``None``)."""
        ...

    def start_get_many(
        self, keys: list[str], deadline_s: float
    ) -> Callable[[], dict[str, CacheEntry | None]]:
        """``get_many`` sent now and collected by calling the result (``DocumentStore``'s
        ``start_get_many``: started now, collected by the calling thread; the wait bounded by
        ``deadline_s`` from now)."""
        ...


def cache_key(source: str, normalised_input: str) -> str:
    """``{source}_{sha256(normalised input)}``: also the Firestore document id."""
    digest = hashlib.sha256(normalised_input.encode("utf-8")).hexdigest()
    return f"{source}_{digest}"


class MemoryCacheStore:
    """In-process store (tests, local runs). Thread-safe; unbounded, so not for production."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, CacheEntry] = {}

    def get(self, key: str) -> CacheEntry | None:
        """See ``CacheStore.get``."""
        with self._lock:
            return self._entries.get(key)

    def get_many(self, keys: list[str]) -> dict[str, CacheEntry | None]:
        """See ``CacheStore.get_many``."""
        with self._lock:
            return {k: self._entries.get(k) for k in keys}

    def start_get_many(
        self, keys: list[str], deadline_s: float
    ) -> Callable[[], dict[str, CacheEntry | None]]:
        """See ``CacheStore.start_get_many``: in memory, read when collected."""
        return lambda: self.get_many(keys)

    def put(self, key: str, entry: CacheEntry) -> None:
        """See ``CacheStore.put`` (nothing is encoded here)."""
        with self._lock:
            self._entries[key] = entry

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class StoreCacheStore:
    """``external_data_cache/{source}_{sha256}`` documents through the one store layer (its
    deadlines, retries and ``StoreError`` mapping).

    Fields ``{source, key, payload, etag, fetchedAt, expireAt}``. ``payload`` is stored as a JSON
    string, not a map: a map would be indexed field by field, and a user with hundreds of
    repositories would pass Firestore's 40,000 index entries per document.
    """

    def __init__(
        self, store: DocumentStore, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._clock = clock
        self._written: OrderedDict[str, tuple[str, float]] = OrderedDict()
        """key → (digest of what this instance last wrote there, when)."""
        self._lock = threading.Lock()

    def get(self, key: str) -> CacheEntry | None:
        """See ``CacheStore.get``; a document that cannot be decoded counts as a miss."""
        return self.get_many([key])[key]

    def get_many(self, keys: list[str]) -> dict[str, CacheEntry | None]:
        """See ``CacheStore.get_many``: one batched read."""
        got = self._store.get_many([cache_path(k) for k in keys])
        return {k: self._decode(k, got.get(cache_path(k))) for k in keys}

    def start_get_many(
        self, keys: list[str], deadline_s: float
    ) -> Callable[[], dict[str, CacheEntry | None]]:
        """See ``CacheStore.start_get_many``: the store's started batched read."""
        pending = self._store.start_get_many([cache_path(k) for k in keys], deadline_s)

        def collect() -> dict[str, CacheEntry | None]:
            got = pending()
            return {k: self._decode(k, got.get(cache_path(k))) for k in keys}

        return collect

    @staticmethod
    def _decode(key: str, doc: Mapping[str, Any] | None) -> CacheEntry | None:
        if doc is None:
            return None
        try:
            payload = json.loads(doc["payload"])
            if not isinstance(payload, dict):
                return None
            fetched, expire = doc["fetchedAt"], doc["expireAt"]
            if not isinstance(fetched, datetime) or not isinstance(expire, datetime):
                return None
            etag = doc.get("etag")
            etag = etag if isinstance(etag, str) else None
            return CacheEntry(payload, fetched, expire, etag, stored_chars=len(doc["payload"]))
        except (KeyError, TypeError, ValueError, RecursionError):
            log.warning("unreadable cache document ignored", extra={"json_fields": {"key": key}})
            return None

    def put(self, key: str, entry: CacheEntry) -> int | None:
        """See ``CacheStore.put``; payloads too large for one document are not cached."""
        text = json.dumps(entry.payload, separators=(",", ":"), ensure_ascii=False)
        if len(text) > MAX_PAYLOAD_CHARS:
            log.info(
                "cache payload too large, not cached",
                extra={"json_fields": {"key": key, "chars": len(text)}},
            )
            return len(text)
        digest = hashlib.sha256(f"{entry.etag}\x00{text}".encode()).hexdigest()
        needed, before = self._claim(key, digest)
        if not needed:
            return len(text)  # the same answer was written here under a minute ago (or is being)
        doc = {
            "source": key.split("_", 1)[0],
            "key": key,
            "payload": text,
            "etag": entry.etag,
            "fetchedAt": entry.fetched_at,
            "expireAt": entry.expire_at,
        }
        try:
            self._store.commit([Write(cache_path(key), doc, merge=False)])
        except BaseException:
            with self._lock:  # not written: the next caller tries again
                if before is None:
                    self._written.pop(key, None)
                else:
                    self._written[key] = before
            raise
        return len(text)

    def _claim(self, key: str, digest: str) -> tuple[bool, tuple[str, float] | None]:
        """Claim the write of ``digest`` to ``key``: whether it is needed (not if this instance
        wrote, or is writing, the same answer less than ``REWRITE_AFTER_S`` ago), and the claim
        it replaced (``None`` if none), put back if the write fails. Claimed before the write,
        so simultaneous refreshes of one input on an instance write it once."""
        with self._lock:
            last = self._written.get(key)
            now = self._clock()
            if last is not None and last[0] == digest and now - last[1] < REWRITE_AFTER_S:
                return False, last
            self._written[key] = (digest, now)
            self._written.move_to_end(key)
            while len(self._written) > _REMEMBERED:
                self._written.popitem(last=False)
            return True, last

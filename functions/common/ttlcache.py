"""A tiny in-process TTL cache for the hot path (per function instance)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Generic, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    """Values that expire ``ttl`` after they were put; bounded in size (oldest evicted)."""

    def __init__(self, ttl: timedelta, max_items: int = 10_000) -> None:
        self.ttl = ttl
        self.max_items = max_items
        self._items: dict[str, tuple[datetime, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, now: datetime) -> V | None:
        """The value if present and fresh."""
        item = self._items.get(key)
        if item is None or item[0] <= now:
            return None
        return item[1]

    def put(self, key: str, value: V, now: datetime) -> None:
        """Store ``value`` until ``now + ttl``."""
        if self.ttl <= timedelta(0):
            return
        with self._lock:
            if len(self._items) >= self.max_items:
                for old in list(self._items)[: self.max_items // 10 or 1]:
                    self._items.pop(old, None)
            self._items[key] = (now + self.ttl, value)

    def drop(self, key: str) -> None:
        """Forget ``key``."""
        self._items.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()

"""Values derived from objects that are never changed, kept by those objects' identities.

A warm call answered from a cache entry the instance holds (``enrichment.held``) is given the
very same payload objects as the call before it, and merged and shaped them again for its
answer: most of the CPU of its enrichment. What is derived from the same objects is the same,
so it is kept here and handed out again (it must be treated as read-only, as the payloads are).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class IdentityMemo(Generic[V]):
    """Values by the identities of the objects they were derived from (and a hashable tag),
    at most ``budget`` in weight, least recently used first out. The objects are kept with
    their value: no other object can take one of their identities while its value is here, so
    a key of identities found means these very objects."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._items: OrderedDict[tuple[Hashable, ...], tuple[tuple[object, ...], V, int]] = (
            OrderedDict()
        )
        self._weight = 0
        self._lock = threading.Lock()

    def get(self, objects: tuple[object, ...], tag: Hashable = None) -> V | None:
        """The value derived from exactly these objects (with ``tag``), if kept."""
        key = _key(objects, tag)
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, objects: tuple[object, ...], tag: Hashable, value: V, weight: int) -> None:
        """Keep ``value`` as derived from ``objects`` (with ``tag``); one heavier than a
        quarter of the budget is not kept."""
        if weight > self.budget // 4:
            return
        key = _key(objects, tag)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._weight -= old[2]
            self._items[key] = (objects, value, weight)
            self._weight += weight
            while self._weight > self.budget:
                _, (_, _, dropped) = self._items.popitem(last=False)
                self._weight -= dropped

    def __len__(self) -> int:
        return len(self._items)

    @property
    def weight(self) -> int:
        """The weight of what is kept."""
        return self._weight


def _key(objects: tuple[object, ...], tag: Hashable) -> tuple[Hashable, ...]:
    return (tag, *map(id, objects))

"""The in-memory twin of the Firestore store: same protocol, same semantics, for unit tests."""

from __future__ import annotations

import copy
import operator
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from stores.base import Fields, Filter, Inc, Write, doc_version
from stores.errors import ConfigConflict, StoreError

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda a, b: a in b,
    "array_contains": lambda a, b: isinstance(a, list) and b in a,
}


def _merge(target: dict[str, Any], data: Mapping[str, Any]) -> None:
    for key, value in data.items():
        if isinstance(value, Inc):
            current = target.get(key, 0)
            target[key] = (current if isinstance(current, (int, float)) else 0) + value.by
        elif isinstance(value, Mapping):
            child = target.get(key)
            if not isinstance(child, dict):
                child = {}
                target[key] = child
            _merge(child, value)
        else:
            target[key] = copy.deepcopy(value)


def _resolve(data: Mapping[str, Any], value: Any) -> Any:
    if isinstance(value, Inc):
        return value.by
    if isinstance(value, Mapping):
        return {k: _resolve(data, v) for k, v in value.items()}
    return copy.deepcopy(value)


def _field(doc: Mapping[str, Any], path: str) -> Any:
    cur: Any = doc
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


class MemoryStore:
    """A thread-safe dict of documents keyed by path. ``fail`` makes every call raise."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.fail = False
        self.round_trips = 0
        self._lock = threading.Lock()

    def _enter(self) -> None:
        self.round_trips += 1
        if self.fail:
            raise StoreError("memory store is down")

    def get_many(
        self, paths: Sequence[str], fields: Fields | None = None
    ) -> dict[str, dict[str, Any] | None]:
        """See ``DocumentStore.get_many``."""
        masks = fields or {}
        with self._lock:
            self._enter()
            return {
                p: copy.deepcopy(_only(self.docs[p], masks.get(p))) if p in self.docs else None
                for p in paths
            }

    def start_get_many(
        self, paths: Sequence[str], deadline_s: float | None = None, fields: Fields | None = None
    ) -> Callable[[], dict[str, dict[str, Any] | None]]:
        """See ``DocumentStore.start_get_many``: in memory, the read is made when collected."""
        wanted = list(paths)
        return lambda: self.get_many(wanted, fields)

    def increment(self, path: str, field_name: str, by: int, extra: Mapping[str, Any]) -> int:
        """See ``DocumentStore.increment``."""
        with self._lock:
            self._enter()
            doc = self.docs.setdefault(path, {})
            _merge(doc, {field_name: Inc(by), **extra})
            return int(doc[field_name])

    def start_increment(
        self, path: str, field_name: str, by: int, extra: Mapping[str, Any]
    ) -> Callable[[], int]:
        """See ``DocumentStore.start_increment``: in memory, incremented when collected."""
        kept = dict(extra)
        return lambda: self.increment(path, field_name, by, kept)

    def commit(self, writes: Sequence[Write]) -> None:
        """See ``DocumentStore.commit``."""
        with self._lock:
            self._enter()
            for w in writes:
                if w.merge:
                    _merge(self.docs.setdefault(w.path, {}), w.data)
                else:
                    self.docs[w.path] = {k: _resolve(w.data, v) for k, v in w.data.items()}

    def query(
        self,
        collection: str,
        filters: Sequence[Filter] = (),
        *,
        group: bool = False,
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        """See ``DocumentStore.query``."""
        with self._lock:
            self._enter()
            out = []
            for path, doc in self.docs.items():
                parent, _, _ = path.rpartition("/")
                if group:
                    if parent.rpartition("/")[2] != collection:
                        continue
                elif parent != collection:
                    continue
                ok = True
                for fld, op, value in filters:
                    actual = _field(doc, fld)
                    try:
                        ok = actual is not None and _OPS[op](actual, value)
                    except TypeError:
                        ok = False
                    if not ok:
                        break
                if ok:
                    out.append((path, copy.deepcopy(doc)))
        if order_by:
            out.sort(key=lambda pd: _field(pd[1], order_by), reverse=descending)
        return out[:limit] if limit is not None else out

    def compare_and_set(
        self, path: str, expected_version: int, data: Mapping[str, Any], extra: Sequence[Write]
    ) -> None:
        """See ``DocumentStore.compare_and_set``."""
        with self._lock:
            self._enter()
            current = self.docs.get(path)
            version = doc_version(current)
            if version != expected_version:
                raise ConfigConflict(f"expected version {expected_version}, found {version}")
            self.docs[path] = copy.deepcopy(dict(data))
            for w in extra:
                if w.merge:
                    _merge(self.docs.setdefault(w.path, {}), w.data)
                else:
                    self.docs[w.path] = {k: _resolve(w.data, v) for k, v in w.data.items()}

    def replace_if_unchanged(
        self,
        path: str,
        expected: Mapping[str, Any] | None,
        data: Mapping[str, Any],
        extra: Sequence[Write],
    ) -> None:
        """See ``DocumentStore.replace_if_unchanged``."""
        with self._lock:
            self._enter()
            if self.docs.get(path) != (None if expected is None else dict(expected)):
                raise ConfigConflict(f"{path} changed since it was read")
            self.docs[path] = {k: _resolve(data, v) for k, v in data.items()}
            for w in extra:
                if w.merge:
                    _merge(self.docs.setdefault(w.path, {}), w.data)
                else:
                    self.docs[w.path] = {k: _resolve(w.data, v) for k, v in w.data.items()}

    def hurried(self, deadline_s: float) -> MemoryStore:
        """See ``DocumentStore.hurried``: memory answers at once; the same store."""
        return self

    def delete_all(self) -> None:
        """See ``DocumentStore.delete_all``."""
        with self._lock:
            self.docs.clear()

    def delete_many(self, paths: Sequence[str]) -> None:
        """See ``DocumentStore.delete_many``."""
        with self._lock:
            self._enter()
            for path in paths:
                self.docs.pop(path, None)

    def list_paths(self, collection: str, id_prefix: str = "") -> list[str]:
        """See ``DocumentStore.list_paths``."""
        with self._lock:
            self._enter()
            return sorted(
                path
                for path in self.docs
                if path.rpartition("/")[0] == collection
                and path.rpartition("/")[2].startswith(id_prefix)
            )


def _only(doc: dict[str, Any], names: Sequence[str] | None) -> dict[str, Any]:
    """``doc`` as a read for the top-level fields ``names`` gives it (``None``: whole)."""
    return doc if names is None else {k: doc[k] for k in names if k in doc}

"""Reading the aggregates: what the roll-up folded, plus the raw minutes it has not yet folded.

Calls write one shard of their minute's raw aggregate; ``analytics.rollup`` folds complete
minutes into one document per minute, hour and day and moves its cursor (``through``) in the
same transaction. A reader sums the rolled documents of its buckets and adds the raw shards from
the cursor on, so figures are exact and current whether the roll-up is minutes behind or has
never run (the emulator). Rolled documents written before the raw layout (sharded ``m``/``h``/
``d`` documents) carry the same ``granularity`` and are summed the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from stores.base import DocumentStore
from stores.errors import StoreError
from stores.schema import AGGREGATE_HEADER as _HEADER
from stores.schema import BUCKET_SIZE, METRICS, MINUTE_ONLY, RAW, ROLLUP_PATH, floor_to

_ATTEMPTS = 5
"""Reads of the rolled documents that may race a roll-up before the reader gives up waiting."""


def add_into(
    target: dict[str, Any], doc: Mapping[str, Any], skip: frozenset[str] = frozenset()
) -> None:
    """Add the numeric leaves of ``doc`` into ``target`` (nested maps add key by key);
    top-level keys in ``skip`` are left out. An odd document cannot break a reader: a leaf
    that is not a finite number is ignored, and so is one whose place in ``target`` already
    holds the other kind (a number where maps were summed, or a map where numbers were)."""
    for key, value in doc.items():
        if key in _HEADER or key in skip:
            continue
        if isinstance(value, Mapping):
            child = target.setdefault(key, {})
            if isinstance(child, dict):
                add_into(child, value)
        elif _finite(value):
            held = target.get(key, 0)
            if _finite(held):
                target[key] = held + value


def _finite(value: object) -> bool:
    """A number that can be summed and counted: no bool, no NaN, no infinity."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def plain_time(value: object) -> datetime | None:
    """A stored timestamp as a plain ``datetime`` (``None`` if it is not one). Firestore's
    ``DatetimeWithNanoseconds`` loses its nanoseconds slot in arithmetic and then cannot be
    written back, so times that are computed with and stored again are converted first."""
    if not isinstance(value, datetime):
        return None
    return datetime(*value.timetuple()[:6], value.microsecond, tzinfo=value.tzinfo or UTC)


def rollup_cursor(store: DocumentStore) -> tuple[int, datetime | None]:
    """The roll-up cursor's version and ``through`` (``None``: nothing folded yet)."""
    doc = store.get_many([ROLLUP_PATH]).get(ROLLUP_PATH) or {}
    return int(doc.get("version", 0)), plain_time(doc.get("through"))


def read_buckets(
    store: DocumentStore, granularity: str, start: datetime, end: datetime
) -> dict[datetime, dict[str, Any]]:
    """Summed aggregates per bucket start, for buckets of ``granularity`` (``m``, ``h``, ``d``)
    starting in [start, end)."""
    rolled, through = _rolled(store, granularity, start, end)
    out: dict[datetime, dict[str, Any]] = {}
    for doc in rolled:
        bucket = plain_time(doc.get("bucketStart"))
        if bucket is not None:
            add_into(out.setdefault(bucket, {}), doc)
    # The minutes not folded yet: from the cursor on, up to the end of the last bucket.
    lo = max(start, through) if through else start
    raw = store.query(
        METRICS,
        [
            ("granularity", "==", RAW),
            ("bucketStart", ">=", lo),
            ("bucketStart", "<", end + BUCKET_SIZE[granularity]),
        ],
    )
    skip = frozenset() if granularity == "m" else MINUTE_ONLY
    for _path, doc in raw:
        minute = plain_time(doc.get("bucketStart"))
        if minute is None:
            continue
        bucket = floor_to(minute, granularity)
        if start <= bucket < end:
            add_into(out.setdefault(bucket, {}), doc, skip)
    return out


def _rolled(
    store: DocumentStore, granularity: str, start: datetime, end: datetime
) -> tuple[list[dict[str, Any]], datetime | None]:
    """The rolled documents of the period and the cursor they are complete up to: the cursor
    is read before and after them (a seqlock), so a fold landing in between is not counted
    twice (once rolled, once raw)."""
    for _ in range(_ATTEMPTS):
        version, through = rollup_cursor(store)
        rows = store.query(
            METRICS,
            [
                ("granularity", "==", granularity),
                ("bucketStart", ">=", start),
                ("bucketStart", "<", end),
            ],
        )
        if rollup_cursor(store)[0] == version:
            return [doc for _path, doc in rows], through
    raise StoreError("the aggregates kept changing under the reader")


def total(buckets: Mapping[datetime, Mapping[str, Any]]) -> dict[str, Any]:
    """All buckets summed."""
    out: dict[str, Any] = {}
    for doc in buckets.values():
        add_into(out, doc)
    return out


def get(doc: Mapping[str, Any], path: str) -> Any:
    """A nested value by dotted path, or ``None``."""
    cur: Any = doc
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def num(doc: Mapping[str, Any], path: str) -> int:
    """A nested counter by dotted path, 0 when absent or not a finite number."""
    value = get(doc, path)
    return int(value) if _finite(value) else 0

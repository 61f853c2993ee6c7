"""Reading the sharded aggregates: sum the shards of each bucket into one nested dict."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from stores.base import DocumentStore
from stores.schema import AGGREGATE_HEADER as _HEADER
from stores.schema import METRICS


def add_into(target: dict[str, Any], doc: Mapping[str, Any]) -> None:
    """Add the numeric leaves of ``doc`` into ``target`` (nested maps add key by key)."""
    for key, value in doc.items():
        if key in _HEADER:
            continue
        if isinstance(value, Mapping):
            child = target.setdefault(key, {})
            if isinstance(child, dict):
                add_into(child, value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            target[key] = target.get(key, 0) + value


def read_buckets(
    store: DocumentStore, granularity: str, start: datetime, end: datetime
) -> dict[datetime, dict[str, Any]]:
    """Summed aggregates per bucket start, for buckets starting in [start, end)."""
    rows = store.query(
        METRICS,
        [
            ("granularity", "==", granularity),
            ("bucketStart", ">=", start),
            ("bucketStart", "<", end),
        ],
    )
    out: dict[datetime, dict[str, Any]] = {}
    for _path, doc in rows:
        bucket = doc.get("bucketStart")
        if not isinstance(bucket, datetime):
            continue
        add_into(out.setdefault(bucket, {}), doc)
    return out


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
    """A nested counter by dotted path, 0 when absent."""
    value = get(doc, path)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0

"""The aggregates as the readers see them (``analytics.metrics.read_buckets``), for tests that
check what a call counted: raw shards and rolled documents alike, whichever holds them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from analytics.metrics import get, read_buckets, total
from stores.base import DocumentStore

_EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def buckets(store: DocumentStore, g: str = "h") -> list[dict[str, Any]]:
    """Every bucket of granularity ``g`` (``m``, ``h``, ``d``), summed, oldest first."""
    found = read_buckets(store, g, *_EVER)
    return [found[k] for k in sorted(found)]


def summed(store: DocumentStore, g: str = "h") -> dict[str, Any]:
    """All buckets of granularity ``g`` summed into one."""
    return total(read_buckets(store, g, *_EVER))


def counter(store: DocumentStore, path: str, g: str = "h") -> int:
    """One counter (dotted path, e.g. ``c.errors``) over all buckets; 0 when absent."""
    value = get(summed(store, g), path)
    return int(value) if isinstance(value, (int, float)) else 0

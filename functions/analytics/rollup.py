"""The roll-up: fold complete minutes of raw shards into one minute, hour and day document.

Calls increment one shard of their minute's raw aggregate (``recording.recorder``), so the hot
path writes one aggregate document per call and no document takes more than about one write
every two seconds at the configured peak. Every minute the scheduled roll-up reads the raw
shards of the minutes that have settled (ended at least ``SETTLE`` ago: a call's record lands
within its commit deadline of the minute it answered in), sums them and, in one transaction
that also moves the cursor (``config/externalDataRollup``: ``version``, ``through``), writes the
minute documents and adds the sums into the hour and day documents. The cursor is a
compare-and-set on its version, so two roll-ups running at once cannot fold a minute twice: the
loser's transaction fails and it stops. Readers (``analytics.metrics.read_buckets``) add the raw
shards from the cursor on, so a late or stopped roll-up delays nothing but the saving.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from analytics.metrics import add_into, plain_time, rollup_cursor
from common.logs import log
from stores.base import DocumentStore, Inc, Write
from stores.errors import ConfigConflict
from stores.schema import (
    GRANULARITIES,
    METRICS,
    MINUTE_ONLY,
    RAW,
    ROLLUP_PATH,
    floor_to,
    rolled_path,
)

SETTLE = timedelta(seconds=60)
"""How long after a minute ends it is folded. A record is counted in the minute its answer
was given and committed within the store's deadline (5 s, plus 3 s of retries), so 60 s leaves
a wide margin; a record later than that would be read by nobody (logged by the recorder's
caller as any failed write is)."""
MAX_MINUTES_PER_RUN = 24 * 60
"""A run folds at most a day of minutes (a roll-up that was stopped catches up over runs)."""


@dataclass(frozen=True)
class RollupRun:
    """What one run did."""

    folded_minutes: int
    """Minutes the cursor moved over (with or without data)."""
    minutes_with_data: int
    raw_docs: int
    """Raw shard documents read."""
    through: datetime | None
    """The cursor after the run."""
    conflict: bool = False
    """Another roll-up moved the cursor first; this one stopped."""


def roll_up(store: DocumentStore, now: datetime) -> RollupRun:
    """Fold every settled minute after the cursor, one hour per transaction."""
    version, through = rollup_cursor(store)
    limit = floor_to(now - SETTLE, "m")
    if through is None:
        through = _first_raw_minute(store, limit)
        if through == limit:  # nothing to fold yet: start the cursor here
            started = _move_cursor(store, version, limit, now, [])
            return RollupRun(0, 0, 0, limit, conflict=not started)
    moved = with_data = docs = 0
    while through < limit and moved < MAX_MINUTES_PER_RUN:
        upto = min(limit, floor_to(through, "h") + timedelta(hours=1))
        rows = store.query(
            METRICS,
            [
                ("granularity", "==", RAW),
                ("bucketStart", ">=", through),
                ("bucketStart", "<", upto),
            ],
        )
        minutes = _sum_minutes(rows)
        if not _move_cursor(store, version, upto, now, _fold_writes(minutes, now)):
            return RollupRun(moved, with_data, docs, through, conflict=True)
        version += 1
        moved += int((upto - through) / timedelta(minutes=1))
        with_data += len(minutes)
        docs += len(rows)
        through = upto
    if moved:
        log("INFO", "aggregates rolled up", minutes=moved, withData=with_data, rawDocs=docs)
    return RollupRun(moved, with_data, docs, through)


def _move_cursor(
    store: DocumentStore, version: int, through: datetime, now: datetime, writes: list[Write]
) -> bool:
    """Move the cursor to ``through`` together with ``writes``, in one transaction; False
    (logged) when another run moved it first."""
    cursor = {"version": version + 1, "through": through, "updatedAt": now}
    try:
        store.compare_and_set(ROLLUP_PATH, version, cursor, writes)
    except ConfigConflict:
        log("INFO", "roll-up stopped: another run moved the cursor", through=through)
        return False
    return True


def _first_raw_minute(store: DocumentStore, limit: datetime) -> datetime:
    """Where a first run starts: the oldest raw minute, or ``limit`` when there is none."""
    rows = store.query(
        METRICS,
        [("granularity", "==", RAW), ("bucketStart", "<", limit)],
        order_by="bucketStart",
        limit=1,
    )
    first = plain_time(rows[0][1].get("bucketStart")) if rows else None
    return floor_to(first, "m") if first is not None else limit


def _sum_minutes(rows: list[tuple[str, dict[str, Any]]]) -> dict[datetime, dict[str, Any]]:
    """The raw shards summed per minute."""
    out: dict[datetime, dict[str, Any]] = {}
    for _path, doc in rows:
        minute = plain_time(doc.get("bucketStart"))
        if minute is not None:
            add_into(out.setdefault(floor_to(minute, "m"), {}), doc)
    return out


def _fold_writes(minutes: Mapping[datetime, Mapping[str, Any]], now: datetime) -> list[Write]:
    """One minute document per minute with data, and the sums added into their hour and day
    documents (all minutes of one run's hour share one hour and one day)."""
    writes: list[Write] = []
    longer: dict[tuple[str, datetime], dict[str, Any]] = {}
    for minute, sums in sorted(minutes.items()):
        doc = {**_header("m", minute, now), **sums}
        writes.append(Write(rolled_path("m", minute), doc, merge=False))
        for g in ("h", "d"):
            add_into(longer.setdefault((g, floor_to(minute, g)), {}), sums, MINUTE_ONLY)
    for (g, start), sums in longer.items():
        writes.append(Write(rolled_path(g, start), _header(g, start, now) | _increments(sums)))
    return writes


def _header(g: str, start: datetime, now: datetime) -> dict[str, Any]:
    return {
        "granularity": g,
        "bucketStart": start,
        "expireAt": start + GRANULARITIES[g][1],
        "rolledAt": now,
    }


def _increments(sums: Mapping[str, Any]) -> dict[str, Any]:
    """The same tree with every number as an increment (hour and day documents add up)."""
    return {k: _increments(v) if isinstance(v, Mapping) else Inc(v) for k, v in sums.items()}

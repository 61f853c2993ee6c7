"""The scheduled exporter's run (``exportExternalDataMetrics``, every minute): which minutes to
write, and what each minute's series need beside the aggregate.

One run:

1. reads, in one ``get_many``, the rollout config (phase, percentage, the sources it names), the
   evaluator's heartbeat (``config/externalDataEvaluator.lastRunAt``; absent: no heartbeat, so
   the absence alert fires) and the breaker states (``config/externalDataBreakers``; a source
   without an entry is closed);
2. picks the complete minutes after the export cursor: a minute is complete once ``SETTLE`` has
   passed since its end (a call is counted in the minute it *started*, but its record is written
   when it ends; calls are bounded by the enrichment's 60 s timeout). Nothing older than
   ``MAX_AGE`` (24 h: Cloud Monitoring refuses points older than 25 h), at most ``max_minutes``
   per run, oldest first, so a first run or a long pause catches up over a few runs instead of
   one long call;
3. reads those minutes' aggregates with the injected reader (``analytics.metrics.read_buckets``:
   observability may not import analytics, a sibling package) and passes quiet minutes as ``{}``,
   so counts are written as zeros and "N in 10 minutes" sums see them;
4. hands them to ``exporter.write_minutes`` with the cursor in ``CURSOR_PATH``.

The context is read once per run and applied to every minute of the run: the phase of a minute
written late is the phase at export time (a late minute is at most a few minutes old).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from common.vocab import SOURCES
from observability.exporter import (
    MINUTE,
    ExportReport,
    MetricWriter,
    Minute,
    MinuteContext,
    StoreExportCursor,
    write_minutes,
)
from observability.metrics import PHASES
from stores import schema
from stores.base import DocumentStore

EVALUATOR_PATH: str = getattr(schema, "EVALUATOR_PATH", "config/externalDataEvaluator")
"""The evaluator's heartbeat document (``{lastRunAt, ...}``), written on every run."""
BREAKERS_PATH: str = getattr(schema, "BREAKERS_PATH", "config/externalDataBreakers")
"""Breaker states by source."""
SETTLE = timedelta(seconds=60)
"""How long after a minute's end its aggregate is taken as final."""
MAX_AGE = timedelta(hours=24)
"""Minutes older than this are never written."""
MAX_MINUTES_PER_RUN = 60
"""A run writes at most this many minutes (about 45 series each, one or two calls per minute)."""

BucketReader = Callable[
    [DocumentStore, str, datetime, datetime], Mapping[datetime, Mapping[str, Any]]
]
"""``analytics.metrics.read_buckets``: summed aggregates per bucket start in ``[start, end)``."""


def _breaker_state(value: Any) -> bool | str:
    """One source's entry in the breakers document, as ``MinuteContext.breakers`` takes it:
    a state name, a flag, or a map with ``state`` (or ``open``)."""
    if isinstance(value, Mapping):
        if isinstance(value.get("state"), str):
            return str(value["state"])
        return value.get("open") is True
    if isinstance(value, bool | str):
        return value
    return "closed"


def read_context(store: DocumentStore) -> MinuteContext:
    """Phase, percentage, breaker states and heartbeat as stored now (one batched read).

    Malformed values fall back to what the gate would assume: phase off, 0%, breakers closed.
    """
    docs = store.get_many([schema.CONFIG_PATH, EVALUATOR_PATH, BREAKERS_PATH])
    cfg = docs.get(schema.CONFIG_PATH) or {}
    phase = cfg.get("phase")
    pct = cfg.get("rolloutPercentage")
    named = cfg.get("sources")
    sources = set(SOURCES) | (set(named) if isinstance(named, Mapping) else set())
    raw_breakers = docs.get(BREAKERS_PATH) or {}
    breakers = {
        str(s): _breaker_state(raw_breakers.get(s, "closed"))
        for s in sorted(sources)
        if isinstance(s, str)
    }
    heartbeat = (docs.get(EVALUATOR_PATH) or {}).get("lastRunAt")
    return MinuteContext(
        phase=phase if isinstance(phase, str) and phase in PHASES else "off",
        rollout_percentage=pct if isinstance(pct, int) and not isinstance(pct, bool) else 0,
        breakers=breakers,
        evaluator_heartbeat=heartbeat.astimezone(UTC) if isinstance(heartbeat, datetime) else None,
    )


def pending_minutes(
    mark_minute: datetime | None,
    mark_complete: bool,
    now: datetime,
    *,
    max_minutes: int = MAX_MINUTES_PER_RUN,
) -> list[datetime]:
    """The starts of the minutes one run should write, oldest first (see the module docstring).

    ``mark_minute`` is the cursor's last minute; when it was cut short (not complete) it is
    included again, and ``write_minutes`` resumes it after the calls already done.
    """
    end = schema.floor_to(now - SETTLE, "m")  # exclusive: minutes before it are complete
    oldest = schema.floor_to(now - MAX_AGE, "m")
    if oldest < now - MAX_AGE:
        oldest += MINUTE  # the first minute that starts within MAX_AGE
    start = oldest
    if mark_minute is not None:
        after = mark_minute + (MINUTE if mark_complete else timedelta(0))
        start = max(start, after)
    out: list[datetime] = []
    at = start
    while at < end and len(out) < max_minutes:
        out.append(at)
        at += MINUTE
    return out


def export_pending(
    store: DocumentStore,
    client: MetricWriter,
    project: str,
    now: datetime,
    read: BucketReader,
    *,
    max_minutes: int = MAX_MINUTES_PER_RUN,
) -> ExportReport:
    """One scheduled run: write every pending complete minute once, in order."""
    cursor = StoreExportCursor(store)
    mark = cursor.get_last()
    starts = pending_minutes(
        mark.minute if mark else None,
        mark is not None and mark.calls_done is None,
        now,
        max_minutes=max_minutes,
    )
    if not starts:
        return ExportReport()
    buckets = read(store, "m", starts[0], starts[-1] + MINUTE)
    context = read_context(store)
    minutes = [Minute(s, dict(buckets.get(s, {})), context) for s in starts]
    return write_minutes(client, project, minutes, cursor)

"""The scheduled exporter's run (``exportExternalDataMetrics``, every minute): which minutes to
write, and what each minute's series need beside the aggregate.

One run:

1. reads, in one ``get_many``, the rollout config (phase, percentage, the source breakers the
   evaluator keeps in it: ``breakers.{source}.state``, a source without an entry is closed, an
   open breaker whose ``until`` has passed is half-open as the gate reads it) and the
   evaluator's heartbeat (``config/externalDataEvaluator.lastRunAt``; absent: no heartbeat, so
   the absence alert fires);
2. picks the complete minutes after the export cursor: a minute is complete once ``SETTLE`` has
   passed since its end (a call is counted in the minute it was answered, and its record is
   committed as it ends, a store retry or a slow commit later at most). Nothing older than
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


def _breaker_state(value: Any, now: datetime) -> str:
    """One source's entry of the config's ``breakers`` (``{state, since, until}``) as the gate
    reads it at ``now``; anything malformed is closed."""
    if not isinstance(value, Mapping) or not isinstance(value.get("state"), str):
        return "closed"
    state = str(value["state"])
    until = value.get("until")
    if state == "open" and isinstance(until, datetime) and now >= until:
        return "half_open"
    return state


def read_context(store: DocumentStore, now: datetime) -> MinuteContext:
    """Phase, percentage, breaker states and heartbeat as stored now (one batched read).

    Malformed values fall back to what the gate would assume: phase off, 0%, breakers closed.
    """
    docs = store.get_many([schema.CONFIG_PATH, schema.EVALUATOR_PATH])
    cfg = docs.get(schema.CONFIG_PATH) or {}
    phase = cfg.get("phase")
    pct = cfg.get("rolloutPercentage")
    raw = cfg.get("breakers")
    raw_breakers: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    sources = sorted(set(SOURCES) | {s for s in raw_breakers if isinstance(s, str)})
    heartbeat = (docs.get(schema.EVALUATOR_PATH) or {}).get("lastRunAt")
    return MinuteContext(
        phase=phase if isinstance(phase, str) and phase in PHASES else "off",
        rollout_percentage=pct if isinstance(pct, int) and not isinstance(pct, bool) else 0,
        breakers={s: _breaker_state(raw_breakers.get(s), now) for s in sources},
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
    context = read_context(store, now)
    minutes = [Minute(s, dict(buckets.get(s, {})), context) for s in starts]
    return write_minutes(client, project, minutes, cursor)

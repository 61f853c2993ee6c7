"""Minute aggregates -> Cloud Monitoring time series, each minute written once and in order.

``build_series`` is pure: one summed minute aggregate (``external_data_metrics`` granularity
``m``, shards added, shaped as in docs/architecture.md), the minute's start and the context the
aggregate does not hold (phase, rollout percentage, breaker states, evaluator heartbeat) become
the list of ``monitoring_v3.TimeSeries`` defined in ``observability.metrics``: resource
``global``, kind ``GAUGE``, one point whose interval ends at the minute's end.

``write_minutes`` sends them with ``MetricService.CreateTimeSeries``. The API's rules shape it:

- at most 200 series per call, and a series at most once per call: so a call never mixes two
  minutes (the same series would appear twice), and a minute with more than 200 series takes
  several calls;
- a point must be later than the previous point of its series: so minutes go strictly in
  order, and a minute already written is never sent again (the API would refuse it).

Restart safety comes from an ``ExportCursor``: after every call it records how far the export
got (the last complete minute, or the calls already done of a minute cut short), and the next run
skips what is behind the mark. ``StoreExportCursor`` keeps the mark in the document
``config/externalDataMonitoringExport`` of a ``stores.base.DocumentStore``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from google.cloud import monitoring_v3

from common.histogram import count, merge, summary
from observability import metrics as m
from stores.base import DocumentStore, Write

log = logging.getLogger(__name__)

MAX_SERIES_PER_CALL = 200
"""CreateTimeSeries accepts at most this many series per request."""

CURSOR_PATH = "config/externalDataMonitoringExport"
"""Where ``StoreExportCursor`` keeps its mark."""

MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class MinuteContext:
    """What a minute's series need that the aggregate does not hold (read when exporting)."""

    phase: str = "off"
    """Rollout phase: off, beta, premium or full."""
    rollout_percentage: int = 0
    """``rolloutPercentage`` of the rollout config."""
    breakers: Mapping[str, bool | str] = field(default_factory=dict)
    """Source -> breaker state: ``True`` or ``"open"`` is open; anything else is not."""
    evaluator_heartbeat: datetime | None = None
    """When the evaluator last ran; ``None`` if it never did (no heartbeat series then)."""


@dataclass(frozen=True)
class Minute:
    """One complete minute to export."""

    start: datetime
    """The minute's start (UTC, seconds and microseconds zero)."""
    doc: Mapping[str, Any]
    """The minute's aggregate, shards summed; ``{}`` for a minute without any call."""
    context: MinuteContext = field(default_factory=MinuteContext)
    """Phase, rollout percentage, breakers, heartbeat as of this minute."""


# -- building ------------------------------------------------------------------------------


def _num(doc: Mapping[str, Any], *path: str) -> int:
    cur: Any = doc
    for part in path:
        if not isinstance(cur, Mapping):
            return 0
        cur = cur.get(part)
    return int(cur) if isinstance(cur, (int, float)) and not isinstance(cur, bool) else 0


def _map(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, Mapping) else {}


def _series(
    metric: m.MetricDef, labels: Mapping[str, str], value: float, end: datetime
) -> monitoring_v3.TimeSeries:
    if set(labels) != set(metric.labels):
        raise ValueError(f"{metric.name}: labels {sorted(labels)} != {sorted(metric.labels)}")
    typed = (
        monitoring_v3.TypedValue(int64_value=int(value))
        if metric.value_type is m.ValueType.INT64
        else monitoring_v3.TypedValue(double_value=float(value))
    )
    return monitoring_v3.TimeSeries(
        metric={"type": metric.type, "labels": dict(labels)},
        resource={"type": "global", "labels": {}},
        metric_kind="GAUGE",
        value_type=metric.value_type.value,
        points=[
            monitoring_v3.Point(
                interval=monitoring_v3.TimeInterval(end_time=end.astimezone(UTC)),
                value=typed,
            )
        ],
    )


def _is_open(state: bool | str) -> bool:
    return state is True or (isinstance(state, str) and state.lower() == "open")


class _Add(Protocol):
    """Appends one series of the minute being built (``build_series``'s collector)."""

    def __call__(self, metric: m.MetricDef, value: float, **labels: str) -> None: ...


def build_series(
    doc: Mapping[str, Any], start: datetime, context: MinuteContext
) -> list[monitoring_v3.TimeSeries]:
    """The time series of one complete minute, in a stable order (see module docstring)."""
    if start.tzinfo is None:
        raise ValueError("minute start must be timezone-aware (UTC)")
    end = start + MINUTE
    c, sec, fns, src = _map(doc, "c"), _map(doc, "sec"), _map(doc, "fn"), _map(doc, "src")
    out: list[monitoring_v3.TimeSeries] = []

    def add(metric: m.MetricDef, value: float, **labels: str) -> None:
        out.append(_series(metric, labels, value, end))

    _answer_series(add, fns)
    _enrichment_series(add, c)
    _source_series(add, src)
    _latency_series(add, fns)
    _funnel_and_security_series(add, c, sec)
    _context_series(add, context, end)
    return out


def _answer_series(add: _Add, fns: Mapping[str, Any]) -> None:
    """Answers per function by outcome; the enrichment callable always appears, so its
    dashboards and alerts see a 0 rather than no data."""
    for fn in sorted({m.ENRICH_FN, *fns}):
        counts = _map(fns, fn)
        requests, errors, denied = (
            _num(counts, "requests"),
            _num(counts, "errors"),
            _num(counts, "denied"),
        )
        add(m.ANSWERS, max(requests - errors - denied, 0), function=fn, outcome="ok")
        add(m.ANSWERS, errors, function=fn, outcome="error")
        add(m.ANSWERS, denied, function=fn, outcome="denied")


def _enrichment_series(add: _Add, c: Mapping[str, Any]) -> None:
    """Enrichment requests by tier, results, and the service failure rate (only when there
    were requests: no rate is not a 0% rate)."""
    requests = _num(c, "requests")
    premium, free = _num(c, "premiumRequests"), _num(c, "freeRequests")
    add(m.REQUESTS_BY_TIER, premium, tier="premium")
    add(m.REQUESTS_BY_TIER, free, tier="free")
    add(m.REQUESTS_BY_TIER, max(requests - premium - free, 0), tier="unknown")
    add(m.ENRICHMENTS, _num(c, "successful"), result="successful")
    add(m.ENRICHMENTS, _num(c, "failed"), result="failed")
    if requests > 0:
        add(m.SERVICE_FAILURE_RATE, _num(c, "errors") / requests)


def _source_series(add: _Add, src: Mapping[str, Any]) -> None:
    """Source calls by result, and the upstream failure rate over all sources (only when a
    source was called)."""
    src_calls = src_failed = 0
    for source in sorted(src):
        counts = _map(src, source)
        calls, ok = _num(counts, "requests"), _num(counts, "successful")
        failed, timeouts = _num(counts, "failed"), _num(counts, "timeouts")
        src_calls += calls
        src_failed += failed
        add(m.SOURCE_CALLS, ok, source=source, result="successful")
        add(m.SOURCE_CALLS, max(failed - timeouts, 0), source=source, result="failed")
        add(m.SOURCE_CALLS, timeouts, source=source, result="timeout")
    if src_calls > 0:
        add(m.UPSTREAM_FAILURE_RATE, src_failed / src_calls)


def _latency_series(add: _Add, fns: Mapping[str, Any]) -> None:
    """p50/p95/p99 per function, only for functions with timed calls in the minute."""
    for fn in sorted(fns):
        lat = _map(_map(fns, fn), "lat")
        hist = merge([lat])
        if count(hist) == 0:
            continue
        p = summary(hist)
        add(m.LATENCY_P50, p["p50"], function=fn)
        add(m.LATENCY_P95, p["p95"], function=fn)
        add(m.LATENCY_P99, p["p99"], function=fn)


def _funnel_and_security_series(add: _Add, c: Mapping[str, Any], sec: Mapping[str, Any]) -> None:
    """The conversion funnel and the security counters, always sent (0 included)."""
    previews, gates = _num(c, "previews"), _num(c, "gateShown")
    add(m.PREVIEWS, previews)
    add(m.GATES_SHOWN, gates)
    add(m.EXPOSURES, previews + gates)
    add(m.UPGRADE_CLICKS, _num(c, "upgradeClicks"))
    add(m.CONVERSIONS, _num(c, "conversions"))
    add(m.RATE_LIMITED, _num(sec, "rateLimitViolations"))
    add(m.UNAUTHORIZED, _num(sec, "unauthorizedAttempts"))
    add(m.UNAUTHENTICATED, _num(sec, "unauthenticated"))
    add(m.UNAUTHORIZED_FULL, _num(c, "unauthorizedFull"))


def _context_series(add: _Add, context: MinuteContext, end: datetime) -> None:
    """What the aggregate does not hold: breaker states, rollout phase and percentage, and the
    evaluator heartbeat's age at the minute's end."""
    for source in sorted(context.breakers):
        add(m.SOURCE_BREAKER_OPEN, 1 if _is_open(context.breakers[source]) else 0, source=source)
    if context.phase not in m.PHASES:
        raise ValueError(f"unknown phase {context.phase!r}")
    add(m.ROLLOUT_PHASE, m.PHASES[context.phase])
    add(m.ROLLOUT_PERCENTAGE, context.rollout_percentage)
    if context.evaluator_heartbeat is not None:
        age = (end - context.evaluator_heartbeat).total_seconds()
        add(m.EVALUATOR_HEARTBEAT_AGE, max(age, 0.0))


# -- the cursor ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportMark:
    """How far the export got."""

    minute: datetime
    """The last minute touched."""
    calls_done: int | None = None
    """``None``: ``minute`` is complete. A number: only that many calls of it went through."""


class ExportCursor(Protocol):
    """Remembers the last minute written, across restarts."""

    def get_last(self) -> ExportMark | None:
        """The mark, or ``None`` before the first export."""
        ...

    def set_last(self, minute: datetime, calls_done: int | None = None) -> None:
        """Record that ``minute`` is written (``calls_done=None``) or partly written."""
        ...


class MemoryExportCursor:
    """A cursor in a variable (tests; a process that never restarts)."""

    def __init__(self, mark: ExportMark | None = None) -> None:
        self.mark = mark

    def get_last(self) -> ExportMark | None:
        """See ``ExportCursor.get_last``."""
        return self.mark

    def set_last(self, minute: datetime, calls_done: int | None = None) -> None:
        """See ``ExportCursor.set_last``."""
        self.mark = ExportMark(minute, calls_done)


class StoreExportCursor:
    """The mark in one document (``CURSOR_PATH``): ``{lastMinute, callsDone, updatedAt}``."""

    def __init__(self, store: DocumentStore, path: str = CURSOR_PATH) -> None:
        self.store = store
        self.path = path

    def get_last(self) -> ExportMark | None:
        """See ``ExportCursor.get_last``. A missing or unreadable mark is ``None``."""
        doc = self.store.get_many([self.path]).get(self.path)
        if not doc or not isinstance(doc.get("lastMinute"), datetime):
            return None
        done = doc.get("callsDone")
        return ExportMark(
            doc["lastMinute"].astimezone(UTC), done if isinstance(done, int) else None
        )

    def set_last(self, minute: datetime, calls_done: int | None = None) -> None:
        """See ``ExportCursor.set_last``: one replace of the mark document."""
        self.store.commit(
            [
                Write(
                    self.path,
                    {
                        "lastMinute": minute,
                        "callsDone": calls_done,
                        "updatedAt": datetime.now(UTC),
                    },
                    merge=False,
                )
            ]
        )


# -- writing -------------------------------------------------------------------------------


class MetricWriter(Protocol):
    """The part of ``monitoring_v3.MetricServiceClient`` used here."""

    def create_time_series(self, *, name: str, time_series: list[monitoring_v3.TimeSeries]) -> None:
        """CreateTimeSeries."""
        ...


@dataclass
class ExportReport:
    """What one ``write_minutes`` run did."""

    minutes: list[datetime] = field(default_factory=list)
    """Minutes completed, in order."""
    skipped: list[datetime] = field(default_factory=list)
    """Minutes passed over because the cursor was already beyond them."""
    calls: int = 0
    """CreateTimeSeries calls made."""
    series: int = 0
    """Series sent."""


def _chunks(
    series: Sequence[monitoring_v3.TimeSeries], size: int
) -> list[Sequence[monitoring_v3.TimeSeries]]:
    return [series[i : i + size] for i in range(0, len(series), size)]


def write_minutes(
    client: MetricWriter,
    project: str,
    minutes: Iterable[Minute],
    cursor: ExportCursor | None = None,
    *,
    max_per_call: int = MAX_SERIES_PER_CALL,
) -> ExportReport:
    """Write the minutes' series in time order, each minute once (see module docstring).

    Minutes at or before the cursor's mark are skipped; a minute the mark shows as cut short
    resumes after the calls already done. The mark moves after every successful call, so an
    error (raised as the client raised it) leaves it at the last call that went through.
    """
    if not 1 <= max_per_call <= MAX_SERIES_PER_CALL:
        raise ValueError(f"max_per_call must be 1..{MAX_SERIES_PER_CALL}")
    ordered = _in_order(minutes)
    mark = cursor.get_last() if cursor else None
    report = ExportReport()
    name = f"projects/{project}"
    for minute in ordered:
        skip_calls = _calls_done(minute.start, mark)
        if skip_calls is None:
            report.skipped.append(minute.start)
            continue
        batches = _chunks(build_series(minute.doc, minute.start, minute.context), max_per_call)
        _write_minute(client, name, minute.start, batches, skip_calls, cursor, report)
        report.minutes.append(minute.start)
        mark = ExportMark(minute.start)
    if report.minutes:
        _log_report(report)
    return report


def _in_order(minutes: Iterable[Minute]) -> list[Minute]:
    """The minutes sorted by start; a minute given twice is refused, since the API would
    refuse its second point anyway."""
    ordered = sorted(minutes, key=lambda x: x.start)
    for a, b in itertools.pairwise(ordered):
        if a.start == b.start:
            raise ValueError(f"minute {a.start.isoformat()} given twice")
    return ordered


def _calls_done(start: datetime, mark: ExportMark | None) -> int | None:
    """How many calls of the minute starting at ``start`` the mark shows as done: ``None`` when
    the whole minute is behind the mark (skip it), 0 when nothing of it was written."""
    if mark is None or start > mark.minute:
        return 0
    if start < mark.minute or mark.calls_done is None:
        return None
    return mark.calls_done


def _write_minute(
    client: MetricWriter,
    name: str,
    start: datetime,
    batches: Sequence[Sequence[monitoring_v3.TimeSeries]],
    skip_calls: int,
    cursor: ExportCursor | None,
    report: ExportReport,
) -> None:
    """Send one minute's batches after the first ``skip_calls``, moving the cursor after each
    call so a failure resumes where it stopped, and marking the minute complete at the end."""
    for i, batch in enumerate(batches):
        if i < skip_calls:
            continue
        client.create_time_series(name=name, time_series=list(batch))
        report.calls += 1
        report.series += len(batch)
        if cursor is not None and i < len(batches) - 1:
            cursor.set_last(start, i + 1)
    if cursor is not None:
        cursor.set_last(start)


def _log_report(report: ExportReport) -> None:
    """One structured log line per run that exported something."""
    log.info(
        "custom metrics exported",
        extra={
            "json_fields": {
                "minutes": len(report.minutes),
                "skipped": len(report.skipped),
                "calls": report.calls,
                "series": report.series,
                "lastMinute": report.minutes[-1].isoformat(),
            }
        },
    )

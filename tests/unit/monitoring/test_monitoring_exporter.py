"""The exporter core against the loopback Monitoring fake: the series of a minute, batching
within the API's 200, minutes in order and once each, and restart safety over a store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud import monitoring_v3

from common.histogram import bucket_of
from observability import metrics as m
from observability.exporter import (
    CURSOR_PATH,
    MAX_SERIES_PER_CALL,
    ExportMark,
    MemoryExportCursor,
    Minute,
    MinuteContext,
    StoreExportCursor,
    build_series,
    write_minutes,
)
from stores.memory import MemoryStore
from tests.support.fake_monitoring import FakeMonitoring

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
ENR = "enrichCVWithExternalData"
CTX = MinuteContext(
    phase="beta",
    rollout_percentage=1,
    breakers={"github": "open", "web": "closed", "website": False, "linkedin": True},
    evaluator_heartbeat=T0 + timedelta(seconds=30),
)


def doc(requests: int = 10, errors: int = 1) -> dict[str, Any]:
    """A summed minute aggregate shaped as in docs/architecture.md."""
    return {
        "c": {
            "requests": requests,
            "successful": requests - errors - 3,
            "failed": errors,
            "errors": errors,
            "denied": 3,
            "premiumRequests": 4,
            "freeRequests": 5,
            "previews": 2,
            "gateShown": 2,
            "upgradeClicks": 1,
            "conversions": 1,
            "unauthorizedFull": 0,
        },
        "sec": {"unauthorizedAttempts": 1, "rateLimitViolations": 2, "unauthenticated": 0},
        "fn": {
            ENR: {
                "requests": requests,
                "errors": errors,
                "denied": 3,
                "lat": {str(bucket_of(80.0)): 5, str(bucket_of(700.0)): 2},
            },
            "trackExternalDataUsage": {"requests": 4},
        },
        "src": {
            "github": {"requests": 6, "successful": 4, "failed": 2, "timeouts": 1, "lat": {}},
            "web": {"requests": 2, "successful": 2},
        },
    }


def value(ts: monitoring_v3.TimeSeries) -> float:
    v = ts.points[0].value
    return v.int64_value if "int64_value" in v else v.double_value


def pick(series: Sequence[monitoring_v3.TimeSeries], name: str, **labels: str) -> float:
    found = [
        s for s in series if s.metric.type == m.PREFIX + name and dict(s.metric.labels) == labels
    ]
    assert len(found) == 1, (name, labels, len(found))
    return value(found[0])


def minute(i: int, **kw: Any) -> Minute:
    return Minute(T0 + timedelta(minutes=i), doc(**kw), CTX)


# -- the series of one minute ---------------------------------------------------------------


def test_a_minute_becomes_the_defined_series_with_its_figures() -> None:
    series = build_series(doc(), T0, CTX)
    assert pick(series, "answers", function=ENR, outcome="ok") == 6
    assert pick(series, "answers", function=ENR, outcome="error") == 1
    assert pick(series, "answers", function=ENR, outcome="denied") == 3
    assert pick(series, "answers", function="trackExternalDataUsage", outcome="ok") == 4
    assert pick(series, "requests_by_tier", tier="unknown") == 1
    assert pick(series, "service_failure_rate") == pytest.approx(0.1)
    assert pick(series, "upstream_failure_rate") == pytest.approx(2 / 8)
    assert pick(series, "source_calls", source="github", result="timeout") == 1
    assert pick(series, "source_calls", source="github", result="failed") == 1
    assert pick(series, "exposures") == 4
    assert pick(series, "rate_limited") == 2
    assert pick(series, "source_breaker_open", source="github") == 1
    assert pick(series, "source_breaker_open", source="linkedin") == 1
    assert pick(series, "source_breaker_open", source="web") == 0
    assert pick(series, "rollout_phase") == 1
    assert pick(series, "evaluator_heartbeat_age") == 30.0
    p95 = pick(series, "latency_p95_ms", function=ENR)
    assert 680 < p95 < 720  # the bucket of 700 ms, read as its geometric middle
    for s in series:
        d = m.BY_TYPE[s.metric.type]
        assert set(s.metric.labels) == set(d.labels)
        assert (
            s.value_type
            == monitoring_v3.TimeSeries.pb(s).value_type
            == (2 if d.value_type is m.ValueType.INT64 else 3)
        )
        assert s.resource.type == "global"
        assert s.points[0].interval.end_time == T0 + timedelta(minutes=1)


def test_a_quiet_minute_writes_zero_counts_and_no_rates() -> None:
    series = build_series({}, T0, MinuteContext())
    names = {s.metric.type.removeprefix(m.PREFIX) for s in series}
    assert pick(series, "answers", function=ENR, outcome="ok") == 0
    assert "service_failure_rate" not in names
    assert "latency_p95_ms" not in names
    assert "evaluator_heartbeat_age" not in names  # never ran: the absence alert fires


def test_a_naive_minute_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        build_series({}, datetime(2026, 1, 1), CTX)


# -- writing against the fake ---------------------------------------------------------------


def test_minutes_are_written_in_order_whatever_order_they_come_in(fake: FakeMonitoring) -> None:
    client = fake.clients().metrics
    report = write_minutes(client, "demo-p", [minute(2), minute(0), minute(1)])
    assert report.minutes == [T0 + timedelta(minutes=i) for i in range(3)]
    assert fake.rejections == []
    pts = fake.series(m.PREFIX + "answers", function=ENR, outcome="ok")
    assert [t for t, _ in pts] == [T0 + timedelta(minutes=i + 1) for i in range(3)]
    assert report.calls == 3  # a call never mixes two minutes


def test_a_minute_written_twice_is_refused_by_the_api(fake: FakeMonitoring) -> None:
    """Why the cursor exists: the API refuses a point that is not after the previous one."""
    client = fake.clients().metrics
    write_minutes(client, "demo-p", [minute(0)])
    with pytest.raises(gexc.InvalidArgument, match="in order"):
        write_minutes(client, "demo-p", [minute(0)])


def wide_minute(i: int, sources: int) -> Minute:
    d = doc()
    d["src"] = {f"s{k:03d}": {"requests": 1, "successful": 1} for k in range(sources)}
    return Minute(T0 + timedelta(minutes=i), d, CTX)


def test_more_than_200_series_are_split_into_calls_of_at_most_200(fake: FakeMonitoring) -> None:
    client = fake.clients().metrics
    n = len(build_series(wide_minute(0, 100).doc, T0, CTX))
    assert n > MAX_SERIES_PER_CALL
    report = write_minutes(client, "demo-p", [wide_minute(0, 100), wide_minute(1, 100)])
    sizes = [len(r.time_series) for r in fake.calls_of("CreateTimeSeries")]
    assert max(sizes) == MAX_SERIES_PER_CALL and sum(sizes) == 2 * n
    assert report.calls == len(sizes) == 2 * -(-n // MAX_SERIES_PER_CALL)
    assert fake.rejections == []


def test_the_fake_refuses_201_series_in_one_call(fake: FakeMonitoring) -> None:
    client = fake.clients().metrics
    series = build_series(wide_minute(0, 100).doc, T0, CTX)[: MAX_SERIES_PER_CALL + 1]
    with pytest.raises(gexc.InvalidArgument, match="limit is 200"):
        client.create_time_series(name="projects/demo-p", time_series=series)


def test_the_fake_refuses_what_the_api_refuses(fake: FakeMonitoring) -> None:
    client = fake.clients().metrics
    good = build_series(doc(), T0, CTX)[0]
    bad_type = monitoring_v3.TimeSeries(good)
    bad_type.metric.type = "external_data/answers"
    two_points = monitoring_v3.TimeSeries(good)
    two_points.points.append(good.points[0])
    wrong_value = monitoring_v3.TimeSeries(good)
    wrong_value.points[0].value = monitoring_v3.TypedValue(double_value=1.5)
    for series, match in (
        (bad_type, "not a custom metric"),
        (two_points, "exactly one point"),
        (wrong_value, "value type"),
        (good, None),
    ):
        if match is None:
            client.create_time_series(name="projects/demo-p", time_series=[series])
        else:
            with pytest.raises(gexc.InvalidArgument, match=match):
                client.create_time_series(name="projects/demo-p", time_series=[series])
    later = build_series(doc(), T0 + timedelta(minutes=5), CTX)[0]
    with pytest.raises(gexc.InvalidArgument, match="twice"):
        client.create_time_series(name="projects/demo-p", time_series=[later, later])


class Crashing:
    """The real client, but the process dies (raises) before call number ``die_at``."""

    def __init__(self, client: Any, die_at: int) -> None:
        self.client = client
        self.die_at = die_at
        self.n = 0

    def create_time_series(self, *, name: str, time_series: list[Any]) -> None:
        self.n += 1
        if self.n == self.die_at:
            raise RuntimeError("instance killed")
        self.client.create_time_series(name=name, time_series=time_series)


def test_with_a_cursor_a_second_run_writes_nothing_again(fake: FakeMonitoring) -> None:
    client = fake.clients().metrics
    cursor = StoreExportCursor(MemoryStore())
    write_minutes(client, "demo-p", [minute(0), minute(1)], cursor)
    again = write_minutes(client, "demo-p", [minute(0), minute(1), minute(2)], cursor)
    assert again.skipped == [T0, T0 + timedelta(minutes=1)]
    assert again.minutes == [T0 + timedelta(minutes=2)]
    assert fake.rejections == []


def test_restart_after_a_crash_between_minutes_resumes_after_the_last_minute(
    fake: FakeMonitoring,
) -> None:
    store = MemoryStore()
    minutes = [minute(i) for i in range(4)]
    with pytest.raises(RuntimeError):
        write_minutes(
            Crashing(fake.clients().metrics, die_at=3), "demo-p", minutes, StoreExportCursor(store)
        )
    assert store.docs[CURSOR_PATH]["lastMinute"] == T0 + timedelta(minutes=1)
    # a new instance: new client, new cursor object over the same store
    report = write_minutes(fake.clients().metrics, "demo-p", minutes, StoreExportCursor(store))
    assert report.minutes == [T0 + timedelta(minutes=2), T0 + timedelta(minutes=3)]
    pts = fake.series(m.PREFIX + "rollout_phase")
    assert [t for t, _ in pts] == [T0 + timedelta(minutes=i + 1) for i in range(4)]
    assert fake.rejections == []


def test_restart_inside_a_minute_of_several_calls_sends_only_the_rest(
    fake: FakeMonitoring,
) -> None:
    store = MemoryStore()
    minutes = [wide_minute(0, 100)]
    n = len(build_series(minutes[0].doc, T0, CTX))
    with pytest.raises(RuntimeError):
        write_minutes(
            Crashing(fake.clients().metrics, die_at=2), "demo-p", minutes, StoreExportCursor(store)
        )
    assert StoreExportCursor(store).get_last() == ExportMark(T0, 1)
    report = write_minutes(fake.clients().metrics, "demo-p", minutes, StoreExportCursor(store))
    assert report.series == n - MAX_SERIES_PER_CALL
    assert sum(len(p) for p in fake.points.values()) == n  # every series exactly once
    assert fake.rejections == []
    assert StoreExportCursor(store).get_last() == ExportMark(T0, None)


def test_the_same_minute_twice_in_one_run_is_a_bug_of_the_caller() -> None:
    with pytest.raises(ValueError, match="twice"):
        write_minutes(Crashing(None, 0), "p", [minute(0), minute(0)], MemoryExportCursor())

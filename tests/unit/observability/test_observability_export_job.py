"""The scheduled exporter's run over an in-memory store against the loopback Monitoring fake:
which minutes (complete, after the cursor, not older than 24 h, capped per run), quiet minutes
as zeros, and the context (phase, percentage, breakers, heartbeat) read from the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from analytics.metrics import read_buckets
from observability import metrics as m
from observability.export_job import (
    MAX_AGE,
    SETTLE,
    export_pending,
    pending_minutes,
    read_context,
)
from observability.exporter import CURSOR_PATH, StoreExportCursor
from recording.recorder import Recorder
from stores.base import Inc, Write
from stores.memory import MemoryStore
from stores.schema import CONFIG_PATH, EVALUATOR_PATH
from tests.support.fake_monitoring import FakeMonitoring

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
ENR = "enrichCVWithExternalData"


def calls(recorder: Recorder, store: MemoryStore, at: datetime, n: int, errors: int = 0) -> None:
    """``n`` enrichment calls in the minute of ``at`` as the recorder counts them."""
    for i in range(n):
        err = i < errors
        counters: dict[str, Any] = {
            "c": {"requests": Inc(1), ("failed" if err else "successful"): Inc(1)},
            "fn": {ENR: {"requests": Inc(1), "lat": {"20": Inc(1)}}},
        }
        if err:
            counters["c"]["errors"] = Inc(1)
            counters["fn"][ENR]["errors"] = Inc(1)
        store.commit(recorder.aggregate_writes(at, counters))


def answers_ok(fake: FakeMonitoring) -> list[tuple[datetime, Any]]:
    return fake.series(m.ANSWERS.type, function=ENR, outcome="ok")


# -- which minutes -----------------------------------------------------------------------------


def test_a_minute_is_pending_only_once_it_has_settled() -> None:
    mark = T0 - MIN  # 09:59 written
    assert pending_minutes(mark, True, T0 + MIN + SETTLE - timedelta(seconds=1)) == []
    assert pending_minutes(mark, True, T0 + MIN + SETTLE) == [T0]


def test_minutes_after_a_complete_mark_start_after_it_and_a_cut_short_one_is_resumed() -> None:
    now = T0 + 3 * MIN + SETTLE
    assert pending_minutes(T0, True, now) == [T0 + MIN, T0 + 2 * MIN]
    assert pending_minutes(T0, False, now) == [T0, T0 + MIN, T0 + 2 * MIN]


def test_nothing_older_than_24_hours_and_at_most_max_minutes_per_run_oldest_first() -> None:
    now = T0 + SETTLE
    first = pending_minutes(None, False, now, max_minutes=5)
    assert first[0] == T0 - MAX_AGE + MIN and len(first) == 5
    assert first == sorted(first)
    stale_mark = T0 - timedelta(days=3)
    assert pending_minutes(stale_mark, True, now, max_minutes=1) == [T0 - MAX_AGE + MIN]
    full = pending_minutes(None, False, now, max_minutes=10_000)
    assert len(full) == 24 * 60 - 1 and full[-1] == T0 - MIN


# -- the context -------------------------------------------------------------------------------


def test_context_absent_is_phase_off_breakers_closed_and_no_heartbeat(store: MemoryStore) -> None:
    ctx = read_context(store, T0)
    assert ctx.phase == "off" and ctx.rollout_percentage == 0
    assert ctx.evaluator_heartbeat is None
    assert dict(ctx.breakers) == dict.fromkeys(("github", "linkedin", "web", "website"), "closed")


def test_context_reads_phase_breakers_and_heartbeat(store: MemoryStore) -> None:
    breakers = {
        "github": {"state": "open", "since": T0, "until": T0 + 5 * MIN},
        "web": {"state": "open", "since": T0 - 9 * MIN, "until": T0 - 4 * MIN},
        "website": {"state": "half_open", "since": T0},
    }
    store.commit(
        [
            Write(CONFIG_PATH, {"phase": "beta", "rolloutPercentage": 1, "breakers": breakers}),
            Write(EVALUATOR_PATH, {"lastRunAt": T0}),
        ]
    )
    ctx = read_context(store, T0 + MIN)
    assert (ctx.phase, ctx.rollout_percentage, ctx.evaluator_heartbeat) == ("beta", 1, T0)
    assert ctx.breakers["github"] == "open"
    assert ctx.breakers["web"] == "half_open"  # its time is up: the gate probes it
    assert ctx.breakers["website"] == "half_open" and ctx.breakers["linkedin"] == "closed"


def test_a_malformed_config_exports_as_off(store: MemoryStore) -> None:
    doc = {"phase": "sideways", "rolloutPercentage": "lots", "breakers": {"github": "open"}}
    store.commit([Write(CONFIG_PATH, doc)])
    ctx = read_context(store, T0)
    assert (ctx.phase, ctx.rollout_percentage, ctx.breakers["github"]) == ("off", 0, "closed")


# -- a run -------------------------------------------------------------------------------------


def test_a_run_writes_each_complete_minute_once_with_quiet_minutes_as_zeros(
    store: MemoryStore, recorder: Recorder, fake: FakeMonitoring
) -> None:
    client = fake.clients().metrics
    StoreExportCursor(store).set_last(T0 - MIN)
    calls(recorder, store, T0 + timedelta(seconds=5), 4, errors=1)
    calls(recorder, store, T0 + 2 * MIN + timedelta(seconds=50), 2)
    calls(recorder, store, T0 + 3 * MIN, 7)  # not settled yet at 10:04:00
    report = export_pending(store, client, "demo-p", T0 + 4 * MIN, read_buckets)
    assert report.minutes == [T0, T0 + MIN, T0 + 2 * MIN]
    assert fake.rejections == []
    assert [v for _, v in answers_ok(fake)] == [3, 0, 2]
    assert [t for t, _ in answers_ok(fake)] == [T0 + MIN, T0 + 2 * MIN, T0 + 3 * MIN]
    rate = fake.series(m.SERVICE_FAILURE_RATE.type)
    assert [v for _, v in rate] == [0.25, 0.0]  # no rate for the quiet minute
    again = export_pending(store, client, "demo-p", T0 + 4 * MIN + SETTLE - MIN, read_buckets)
    assert again.minutes == [] and again.calls == 0
    later = export_pending(store, client, "demo-p", T0 + 5 * MIN, read_buckets)
    assert later.minutes == [T0 + 3 * MIN]
    assert [v for _, v in answers_ok(fake)] == [3, 0, 2, 7]
    assert store.docs[CURSOR_PATH]["lastMinute"] == T0 + 3 * MIN
    assert fake.rejections == []


def test_a_run_writes_the_stored_context_into_every_minute(
    store: MemoryStore, recorder: Recorder, fake: FakeMonitoring
) -> None:
    client = fake.clients().metrics
    StoreExportCursor(store).set_last(T0 - MIN)
    store.commit(
        [
            Write(
                CONFIG_PATH,
                {
                    "phase": "premium",
                    "rolloutPercentage": 25,
                    "breakers": {"github": {"state": "open", "until": T0 + 9 * MIN}},
                },
            ),
            Write(EVALUATOR_PATH, {"lastRunAt": T0 + timedelta(seconds=10)}),
        ]
    )
    export_pending(store, client, "demo-p", T0 + 2 * MIN, read_buckets)
    assert [v for _, v in fake.series(m.ROLLOUT_PHASE.type)] == [2]
    assert [v for _, v in fake.series(m.ROLLOUT_PERCENTAGE.type)] == [25]
    assert [v for _, v in fake.series(m.SOURCE_BREAKER_OPEN.type, source="github")] == [1]
    assert [v for _, v in fake.series(m.SOURCE_BREAKER_OPEN.type, source="web")] == [0]
    assert [v for _, v in fake.series(m.EVALUATOR_HEARTBEAT_AGE.type)] == [50.0]


def test_without_an_evaluator_heartbeat_no_heartbeat_series_is_written(
    store: MemoryStore, fake: FakeMonitoring
) -> None:
    client = fake.clients().metrics
    StoreExportCursor(store).set_last(T0 - MIN)
    report = export_pending(store, client, "demo-p", T0 + 2 * MIN, read_buckets)
    assert report.minutes == [T0]
    assert fake.series(m.EVALUATOR_HEARTBEAT_AGE.type) == []
    assert [v for _, v in answers_ok(fake)] == [0]


def test_a_first_run_starts_24_hours_back_and_catches_up_over_runs(
    store: MemoryStore, fake: FakeMonitoring
) -> None:
    client = fake.clients().metrics
    now = T0 + SETTLE
    first = export_pending(store, client, "demo-p", now, read_buckets, max_minutes=30)
    assert first.minutes[0] == T0 - MAX_AGE + MIN and len(first.minutes) == 30
    second = export_pending(store, client, "demo-p", now, read_buckets, max_minutes=30)
    assert second.minutes[0] == first.minutes[-1] + MIN
    assert fake.rejections == []

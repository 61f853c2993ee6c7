"""The aggregates' write pattern (issue 11, item 2): one raw shard per call, a roll-up that folds
settled minutes exactly once, and readers that are exact whether the roll-up is current, behind,
racing them, or has never run. Runs on the in-memory store always and on the Firestore emulator
when it is up (``make test`` runs this file again under the emulators; each test gets a project
of its own there, so the shared cursor of other tests is never touched).
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.metrics import read_buckets, rollup_cursor
from analytics.rollup import SETTLE, roll_up
from common.settings import Settings
from common.vocab import Fn, Outcome, SourceStatus
from recording.recorder import CallRecord, Recorder, SourceOutcome, Switches
from stores.base import DocumentStore, Write
from stores.memory import MemoryStore
from stores.schema import METRICS, ROLLUP_PATH
from tests.support.emulated import firestore_emulator

T0 = datetime(2026, 11, 26, 9, 58, tzinfo=UTC)
EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def _stores() -> Iterator[object]:
    yield pytest.param(MemoryStore, id="memory")
    if firestore_emulator():

        def firestore() -> DocumentStore:
            from stores.firestore import FirestoreStore, make_client

            return FirestoreStore(make_client(f"rollup-{uuid.uuid4().hex[:12]}"))

        yield pytest.param(firestore, id="firestore-emulator")


@pytest.fixture(params=list(_stores()))
def make_store(request: pytest.FixtureRequest) -> Callable[[], DocumentStore]:
    make: Callable[[], DocumentStore] = request.param
    return make


def _record(store: DocumentStore, recorder: Recorder, at: datetime, **kw: Any) -> None:
    rec = CallRecord(
        fn=Fn.ENRICH,
        at=at,
        outcome=kw.pop("outcome", Outcome.SUCCESS),
        duration_ms=kw.pop("duration_ms", 5.0),
        uid=kw.pop("uid", "u1"),
        **kw,
    )
    store.commit(recorder.writes(rec, Switches()))


def _requests(store: DocumentStore, g: str) -> dict[datetime, int]:
    found = read_buckets(store, g, *EVER)
    return {k: int(v["c"]["requests"]) for k, v in found.items() if v.get("c")}


def _expected(times: Sequence[datetime], g: str) -> dict[datetime, int]:
    from stores.schema import floor_to

    return dict(Counter(floor_to(t + timedelta(milliseconds=5), g) for t in times))


def test_a_call_writes_one_shard_of_its_minute_and_shards_are_taken_in_turn() -> None:
    store = MemoryStore()
    recorder = Recorder(Settings(project_id="t", peak_rps=5), rng=lambda n: 7)
    for i in range(25):
        _record(store, recorder, T0 + timedelta(seconds=i), uid=f"u{i}")
    raw = [p for p in store.docs if p.startswith(f"{METRICS}/raw_")]
    # 10 shards (2 per call per second at peak 5), 25 calls in turn from shard 7: 3,3,3,2,...
    assert len(raw) == 10
    per_shard = [int(store.docs[p]["c"]["requests"]) for p in raw]
    assert sorted(per_shard) == [2] * 5 + [3] * 5
    assert not any(p.startswith(f"{METRICS}/{g}_") for p in store.docs for g in "mhd")


def test_the_roll_up_folds_settled_minutes_into_minute_hour_and_day_documents(
    make_store: Callable[[], DocumentStore],
) -> None:
    store = make_store()
    recorder = Recorder(Settings(project_id="t"))
    # 09:58 .. 10:03, across an hour; three calls a minute.
    times = [T0 + timedelta(minutes=m, seconds=s) for m in range(6) for s in (1, 20, 40)]
    for t in times:
        _record(store, recorder, t)
    before = {g: _requests(store, g) for g in "mhd"}
    assert before == {g: _expected(times, g) for g in "mhd"}

    now = T0 + timedelta(minutes=5, seconds=30)  # 10:03:30: minutes up to 10:02 have settled
    run = roll_up(store, now)
    assert run.through == T0 + timedelta(minutes=4) and not run.conflict
    assert run.minutes_with_data == 4 and run.folded_minutes == 4
    rolled = store.query(METRICS, [("granularity", "in", ["m", "h", "d"])])
    ids = sorted(p.rpartition("/")[2] for p, _ in rolled)
    assert ids == [
        "d_2026-11-26",
        "h_2026-11-26T09",
        "h_2026-11-26T10",
        "m_2026-11-26T09:58",
        "m_2026-11-26T09:59",
        "m_2026-11-26T10:00",
        "m_2026-11-26T10:01",
    ]
    by_id = {p.rpartition("/")[2]: d for p, d in rolled}
    assert by_id["h_2026-11-26T09"]["c"]["requests"] == 6
    assert by_id["h_2026-11-26T10"]["c"]["requests"] == 6
    assert by_id["d_2026-11-26"]["c"]["requests"] == 12
    # Readers see the same figures: rolled documents plus the raw minutes after the cursor.
    assert {g: _requests(store, g) for g in "mhd"} == before
    # A second run at the same time folds nothing; a later one folds the rest, exactly once.
    assert roll_up(store, now).folded_minutes == 0
    assert roll_up(store, now + timedelta(minutes=10)).through == T0 + timedelta(minutes=14)
    assert {g: _requests(store, g) for g in "mhd"} == before
    assert by_id["d_2026-11-26"]["c"]["requests"] == 12


def test_a_minute_is_not_folded_until_it_has_settled() -> None:
    store = MemoryStore()
    recorder = Recorder(Settings(project_id="t"))
    _record(store, recorder, T0 + timedelta(seconds=30))
    # The minute 09:58 ends at 09:59; it settles SETTLE later.
    end = T0 + timedelta(minutes=1)
    assert roll_up(store, end + SETTLE - timedelta(seconds=1)).minutes_with_data == 0
    through = rollup_cursor(store)[1]
    assert through is None or through <= T0
    assert roll_up(store, end + SETTLE).minutes_with_data == 1


def test_per_user_failure_keys_stay_in_minute_documents() -> None:
    store = MemoryStore()
    recorder = Recorder(Settings(project_id="t", hash_salt="s" * 16))
    for uid in ("a", "b", "c"):
        _record(store, recorder, T0, uid=uid, outcome=Outcome.INTERNAL)
    assert all("failedUsers" not in v for v in read_buckets(store, "h", *EVER).values())
    roll_up(store, T0 + timedelta(minutes=5))
    minute = read_buckets(store, "m", *EVER)
    hour = read_buckets(store, "h", *EVER)
    assert [len(v["failedUsers"]) for v in minute.values()] == [3]
    assert all("failedUsers" not in v for v in hour.values())
    assert [v["c"]["errors"] for v in hour.values()] == [3]
    stored = [d for p, d in store.docs.items() if p.startswith(f"{METRICS}/h_")]
    assert stored and all("failedUsers" not in d for d in stored)


def test_per_user_source_failure_keys_stay_in_minute_documents() -> None:
    """``srcFailedUsers`` (who failed a source's try, for the breaker's distinct users) is
    keyed per user like ``failedUsers``: minute documents only, never hours or days."""
    store = MemoryStore()
    recorder = Recorder(Settings(project_id="t", hash_salt="s" * 16))
    failed = SourceOutcome("website", SourceStatus.FAILED, 80.0, False, "upstream")
    for uid in ("a", "b", "c"):
        _record(store, recorder, T0, uid=uid, outcome=Outcome.FAILED, sources=(failed,))
    assert all("srcFailedUsers" not in v for v in read_buckets(store, "h", *EVER).values())
    roll_up(store, T0 + timedelta(minutes=5))
    minute = read_buckets(store, "m", *EVER)
    hour = read_buckets(store, "h", *EVER)
    assert [len(v["srcFailedUsers"]["website"]) for v in minute.values()] == [3]
    assert all("srcFailedUsers" not in v for v in hour.values())
    assert [v["src"]["website"]["upstreamFailures"] for v in hour.values()] == [3]
    stored = [d for p, d in store.docs.items() if p.startswith((f"{METRICS}/h_", f"{METRICS}/d_"))]
    assert stored and all("srcFailedUsers" not in d for d in stored)


class _RacingStore(MemoryStore):
    """Runs ``hook`` once, just before it serves the first query of rolled documents: a roll-up
    landing between a reader's cursor read and its read of the rolled documents."""

    def __init__(self) -> None:
        super().__init__()
        self.hook: Callable[[], object] | None = None

    def query(self, collection: str, filters: Sequence[Any] = (), **kw: Any) -> Any:
        rolled = any(f[0] == "granularity" and f[2] in ("m", "h", "d") for f in filters)
        if rolled and self.hook:
            hook, self.hook = self.hook, None
            hook()
        return super().query(collection, filters, **kw)


def test_a_reader_racing_a_roll_up_counts_every_call_once() -> None:
    store = _RacingStore()
    recorder = Recorder(Settings(project_id="t"))
    times = [T0 + timedelta(seconds=10 * i) for i in range(30)]  # 09:58:00 .. 10:02:50
    for t in times:
        _record(store, recorder, t)
    store.hook = lambda: roll_up(store, T0 + timedelta(minutes=10))
    assert _requests(store, "h") == _expected(times, "h")
    assert rollup_cursor(store)[1] == T0 + timedelta(minutes=9)  # the hook did fold


class _BarrierStore(MemoryStore):
    """Holds every roll-up at its first read of raw shards until ``n`` of them got there, so
    concurrent roll-ups really compute the same fold (threads on a MemoryStore otherwise run one
    after another)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(n, timeout=10)
        self.armed = True

    def query(self, collection: str, filters: Sequence[Any] = (), **kw: Any) -> Any:
        raw = any(f[0] == "granularity" and f[2] == "raw" for f in filters)
        if raw and self.armed and "order_by" not in kw:
            self.barrier.wait()  # raises (failing the test) if they never meet
            self.armed = False
        return super().query(collection, filters, **kw)


def test_concurrent_roll_ups_fold_each_minute_exactly_once() -> None:
    store = _BarrierStore(3)
    recorder = Recorder(Settings(project_id="t"))
    times = [T0 + timedelta(seconds=15 * i) for i in range(12)]
    for t in times:
        _record(store, recorder, t)
    runs: list[Any] = []
    threads = [
        threading.Thread(target=lambda: runs.append(roll_up(store, T0 + timedelta(minutes=6))))
        for _ in range(3)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(r.conflict for r in runs) == [False, True, True]
    assert _requests(store, "d") == _expected(times, "d")
    stored = [d for p, d in store.docs.items() if p.startswith(f"{METRICS}/d_")]
    assert [d["c"]["requests"] for d in stored] == [12]


def test_a_first_run_starts_at_the_oldest_raw_minute_and_catches_up_in_hours() -> None:
    store = MemoryStore()
    recorder = Recorder(Settings(project_id="t"))
    old = T0 - timedelta(hours=5, minutes=30)
    _record(store, recorder, old)
    _record(store, recorder, T0)
    run = roll_up(store, T0 + timedelta(minutes=3))
    assert run.minutes_with_data == 2 and run.raw_docs == 2
    # 04:28 .. 10:00 (the last settled minute ends at 10:00): 332 minutes in six folds, one per
    # hour touched (04:28-05:00, 05-06, ..., 09-10).
    assert run.folded_minutes == 332 and run.through == T0 + timedelta(minutes=2)
    assert store.docs[ROLLUP_PATH]["version"] == 6


def test_rolled_documents_of_the_sharded_layout_are_summed_as_before() -> None:
    """Documents written before the raw layout (``h_<hour>_<shard>``) keep counting."""
    store = MemoryStore()
    hour = T0.replace(minute=0)
    store.commit(
        [
            Write(
                f"{METRICS}/h_2026-11-26T09_{i}",
                {"granularity": "h", "bucketStart": hour, "shard": i, "c": {"requests": 2}},
            )
            for i in range(3)
        ]
    )
    _record(store, Recorder(Settings(project_id="t")), T0)
    assert _requests(store, "h") == {hour: 7}
    roll_up(store, T0 + timedelta(minutes=5))
    assert _requests(store, "h") == {hour: 7}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    offsets=st.lists(st.integers(0, 4 * 3600), min_size=1, max_size=60),
    roll_ups=st.lists(st.integers(0, 5 * 3600), max_size=6),
)
def test_readers_are_exact_whatever_the_roll_ups_did(
    offsets: list[int], roll_ups: list[int]
) -> None:
    """Calls and roll-ups at arbitrary times, in time order (a roll-up at ``r`` folds only
    minutes that ended by ``r - SETTLE``, so no later call lands in a folded minute): every
    granularity reads exactly the calls made."""
    store = MemoryStore()
    recorder = Recorder(Settings(project_id="t", peak_rps=2), rng=lambda n: random.randrange(n))
    start = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)
    times = sorted(start + timedelta(seconds=s) for s in offsets)
    pending = sorted(start + timedelta(seconds=s) for s in roll_ups)
    for t in times:
        while pending and pending[0] <= t:
            roll_up(store, pending.pop(0))
        _record(store, recorder, t)
    for at in pending:
        roll_up(store, at)
    for g in "mhd":
        assert _requests(store, g) == _expected(times, g)


def test_a_first_run_with_nothing_to_fold_starts_the_cursor_at_the_settled_minute() -> None:
    store = MemoryStore()
    now = T0 + timedelta(seconds=30)
    run = roll_up(store, now)
    assert run.folded_minutes == 0 and run.through == T0 - timedelta(minutes=1)
    assert rollup_cursor(store) == (1, T0 - timedelta(minutes=1))
    _record(store, Recorder(Settings(project_id="t")), now)
    assert roll_up(store, now + timedelta(minutes=2)).minutes_with_data == 1
    assert _requests(store, "d") == {T0.replace(hour=0, minute=0): 1}

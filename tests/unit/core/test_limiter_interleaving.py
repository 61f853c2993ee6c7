"""Contract section 4, "exact under concurrency", at unit level (issue 13).

Threads started together still tend to run one after another on an in-memory store, so a
non-atomic read-then-increment limiter passed the plain concurrency test 200 times in 200. Here
the store holds every thread's first operation at a barrier until all of them have reached it:
each call's first read or increment happens "at the same moment", as on a busy Firestore. Only
an admission decided by the value the atomic increment returns stays exact.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gating.ratelimit import SlidingWindowLimiter, window_for
from stores.base import Fields
from stores.memory import MemoryStore

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


class Interleaving(MemoryStore):
    """Each thread's first store operation waits until ``parties`` threads have arrived."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=30)
        self._seen = threading.local()
        self.racing = True
        """False once the race is over: later operations go straight through."""

    def _meet(self) -> None:
        if self.racing and not getattr(self._seen, "done", False):
            self._seen.done = True
            self.barrier.wait()

    def get_many(
        self, paths: Sequence[str], fields: Fields | None = None
    ) -> dict[str, dict[str, Any] | None]:
        self._meet()
        return super().get_many(paths, fields)

    def increment(self, path: str, field_name: str, by: int, extra: Mapping[str, Any]) -> int:
        self._meet()
        return super().increment(path, field_name, by, extra)


def _race(store: MemoryStore, n: int, limit: int, previous: int, at: datetime) -> list[bool]:
    lim = SlidingWindowLimiter(store, "enrich", HOUR)
    results: list[bool] = []
    lock = threading.Lock()

    def call() -> None:
        allowed = lim.admit(lim.window("u", at), limit, previous).allowed
        with lock:
            results.append(allowed)

    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == n, "a thread did not finish"
    return results


@pytest.mark.parametrize(("n", "limit"), [(12, 3), (8, 1), (6, 6), (5, 10)])
def test_interleaved_calls_admit_exactly_what_is_left(n: int, limit: int) -> None:
    store = Interleaving(n)
    results = _race(store, n, limit, 0, T0)
    assert results.count(True) == min(n, limit)
    # Refused calls gave their unit back: the counter holds the admitted calls only.
    path = window_for("enrich", "u", T0, HOUR).current_path
    assert store.docs[path]["count"] == min(n, limit)


def test_interleaved_calls_count_the_previous_window() -> None:
    # Half-way through the hour, 4 calls of the previous hour weigh 2: one of 3 is left.
    at = T0 + timedelta(minutes=30)
    results = _race(Interleaving(6), 6, 3, 4, at)
    assert results.count(True) == 1


def test_a_late_call_after_the_race_is_refused_too() -> None:
    store = Interleaving(10)
    _race(store, 10, 3, 0, T0)
    store.racing = False
    lim = SlidingWindowLimiter(store, "enrich", HOUR)
    assert not lim.admit(lim.window("u", T0 + timedelta(minutes=1)), 3, 0).allowed

"""Contract section 4: sliding window, exact under concurrency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from gating.ratelimit import SlidingWindowLimiter, next_available, window_for
from stores.memory import MemoryStore

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def test_n_simultaneous_calls_admit_exactly_what_is_left() -> None:
    store = MemoryStore()
    lim = SlidingWindowLimiter(store, "enrich", timedelta(hours=1))
    results: list[bool] = []
    barrier = threading.Barrier(50)

    def call() -> None:
        barrier.wait()
        results.append(lim.admit(lim.window("u", T0), 3, 0).allowed)

    threads = [threading.Thread(target=call) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 3
    assert store.docs[window_for("enrich", "u", T0, timedelta(hours=1)).current_path]["count"] == 3


def test_previous_window_weighs_in_and_fades() -> None:
    lim = SlidingWindowLimiter(MemoryStore(), "enrich", timedelta(hours=1))
    # 3 calls in the previous hour; a quarter into this hour they weigh 2.25: none left of 3.
    assert not lim.admit(lim.window("u", T0 + timedelta(minutes=15)), 3, 3).allowed
    # Two thirds in, they weigh 1.0: two calls fit, the third does not.
    at = T0 + timedelta(minutes=40)
    assert lim.admit(lim.window("u", at), 3, 3).allowed
    assert lim.admit(lim.window("u", at), 3, 3).allowed
    assert not lim.admit(lim.window("u", at), 3, 3).allowed


def test_refusal_gives_the_unit_back_and_reports_reset() -> None:
    store = MemoryStore()
    lim = SlidingWindowLimiter(store, "enrich", timedelta(hours=1))
    for _ in range(3):
        assert lim.admit(lim.window("u", T0), 3, 0).allowed
    refused = lim.admit(lim.window("u", T0), 3, 0)
    assert not refused.allowed and refused.remaining == 0
    # 3 in this hour: in the next hour they weigh 3*(1-f); one fits when f >= 1/3 (20 min).
    assert refused.reset_at == T0 + timedelta(hours=1, minutes=20, seconds=1)
    assert refused.retry_after_seconds(T0) == 4801
    w = window_for("enrich", "u", T0, timedelta(hours=1))
    assert store.docs[w.current_path]["count"] == 3
    assert store.docs[w.current_path]["expireAt"] == T0 + timedelta(hours=3)


def test_reset_time_is_when_a_unit_really_frees_up() -> None:
    store = MemoryStore()
    lim = SlidingWindowLimiter(store, "enrich", timedelta(hours=1))
    w = window_for("enrich", "u", T0, timedelta(hours=1))
    # previous hour 3, this hour 1: one more fits once 3*(1-f) + 2 <= 3, i.e. f >= 2/3.
    at = next_available(w, 3, 3, 1, T0)
    assert at == T0 + timedelta(minutes=40, seconds=1)
    store.docs[w.current_path] = {"count": 1}
    assert not lim.admit(lim.window("u", at - timedelta(seconds=2)), 3, 3).allowed
    assert lim.admit(lim.window("u", at), 3, 3).allowed

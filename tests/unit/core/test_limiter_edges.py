"""The limiter's edges (contract section 4; found by mutation testing, issue 13): the reset time
for each kind of count, the remaining count of the last admitted call, what a user has left as
the stats read it, and a give-back that fails."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gating.ratelimit import RateDecision, SlidingWindowLimiter, next_available, window_for
from stores.errors import StoreError
from stores.memory import MemoryStore

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)


def _w(at: datetime) -> Any:
    return window_for("enrich", "u", at, HOUR)


@pytest.mark.parametrize(
    ("limit", "previous", "current", "at", "expected"),
    [
        # A limit of 0 never admits: "next" is beyond the next window.
        (0, 0, 0, T0 + timedelta(minutes=10), T0 + 2 * HOUR),
        # Room now and nothing before: now, as it is.
        (1, 0, 0, T0 + timedelta(minutes=10), T0 + timedelta(minutes=10)),
        (3, 0, 2, T0 + timedelta(minutes=10), T0 + timedelta(minutes=10)),
        # Room in this window's count but the previous one weighs: once 1*(1-f) + 2 <= 3 (now).
        (3, 1, 1, T0 + timedelta(minutes=10), T0 + timedelta(minutes=10) + SECOND),
        # previous 4, current 0, limit 3: 4*(1-f) + 1 <= 3 once f >= 1/2.
        (3, 4, 0, T0 + timedelta(minutes=10), T0 + timedelta(minutes=30) + SECOND),
        # Full: the count moves into the previous window's weight. limit 1, current 1: f >= 1.
        (1, 0, 1, T0 + timedelta(minutes=10), T0 + 2 * HOUR + SECOND),
        (3, 0, 3, T0 + timedelta(minutes=10), T0 + HOUR + timedelta(minutes=20) + SECOND),
    ],
)
def test_next_available_for_each_kind_of_count(
    limit: int, previous: int, current: int, at: datetime, expected: datetime
) -> None:
    assert next_available(_w(at), limit, previous, current, at) == expected


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert RateDecision(False, 3, 0, T0 + SECOND).retry_after_seconds(T0) == 1
    assert RateDecision(False, 3, 0, T0 + timedelta(seconds=0.2)).retry_after_seconds(T0) == 1
    assert RateDecision(False, 3, 0, T0 + timedelta(seconds=61.5)).retry_after_seconds(T0) == 62


def test_the_last_admitted_call_has_none_left_and_knows_when_the_next_frees() -> None:
    lim = SlidingWindowLimiter(MemoryStore(), "enrich", HOUR)
    at = T0 + timedelta(minutes=10)
    first, second, last = (lim.admit(lim.window("u", at), 3, 0) for _ in range(3))
    assert (first.remaining, first.reset_at) == (2, T0 + HOUR)
    assert (second.remaining, second.reset_at) == (1, T0 + HOUR)
    assert last.allowed is True and last.remaining == 0
    assert last.reset_at == T0 + HOUR + timedelta(minutes=20) + SECOND
    refused = lim.admit(lim.window("u", at), 3, 0)
    assert refused.allowed is False and refused.reset_at == last.reset_at


@pytest.mark.parametrize(
    ("previous", "current", "at", "expected"),
    [
        (0, 1, T0, RateDecision(True, 3, 2, T0 + HOUR)),
        (0, 2, T0, RateDecision(True, 3, 1, T0 + HOUR)),
        (0, 3, T0, RateDecision(False, 3, 0, T0 + HOUR + timedelta(minutes=20) + SECOND)),
        # A quarter in, 4 calls of the last hour weigh 3: nothing left until f >= 1/2.
        (
            4,
            0,
            T0 + timedelta(minutes=15),
            RateDecision(False, 3, 0, T0 + timedelta(minutes=30) + SECOND),
        ),
    ],
)
def test_usage_is_what_the_user_has_left_without_taking_any(
    previous: int, current: int, at: datetime, expected: RateDecision
) -> None:
    assert SlidingWindowLimiter.usage(_w(at), 3, previous, current) == expected


class GiveBackFails(MemoryStore):
    """Takes units; giving one back fails."""

    def increment(self, path: str, field_name: str, by: int, extra: Mapping[str, Any]) -> int:
        if by < 0:
            raise StoreError("give-back lost")
        return super().increment(path, field_name, by, extra)


def test_a_failed_give_back_keeps_the_unit_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    store = GiveBackFails()
    lim = SlidingWindowLimiter(store, "enrich", HOUR)
    w = lim.window("u", T0)
    with caplog.at_level(logging.ERROR):
        assert lim.give_back(w, "fair quota") is False
        assert lim.admit(w, 0, 0).allowed is False  # refused; its unit cannot be given back
    assert store.docs[w.current_path]["count"] == 1  # fails closed: one call fewer
    lines = [r for r in caplog.records if r.getMessage() == "rate-limit give-back failed"]
    assert [r.levelno for r in lines] == [logging.ERROR, logging.ERROR]
    fields = [getattr(r, "json_fields", {}) for r in lines]
    assert fields == [
        {"why": "fair quota", "errorType": "StoreError"},
        {"why": "refused", "errorType": "StoreError"},
    ]
    assert SlidingWindowLimiter(MemoryStore(), "enrich", HOUR).give_back(w, "x") is True


def test_a_give_back_to_a_deleted_counter_leaves_it_expiring() -> None:
    # A counter deleted between a call's admission and its fair-quota give-back (an erasure)
    # is recreated by the increment; it was {count: -1} with no expireAt, kept forever.
    from datetime import UTC, datetime, timedelta

    from gating.ratelimit import SlidingWindowLimiter
    from stores.memory import MemoryStore

    store = MemoryStore()
    limiter = SlidingWindowLimiter(store, "enrich", timedelta(hours=1))
    window = limiter.window("u", datetime(2026, 11, 27, 10, 30, tzinfo=UTC))
    assert limiter.admit(window, 3, 0).allowed
    store.delete_many([window.current_path])
    assert limiter.give_back(window, "fair quota")
    assert store.docs[window.current_path]["expireAt"] == window.end + timedelta(hours=2)

"""``trackExternalDataUsage`` is limited to 60 events per user per *minute* (contract 2.2).

The older test counted 60 events and a refused 61st, which a limit of 60 per hour (or per day)
passes as well; these move the clock and watch the window slide.
"""

from __future__ import annotations

from typing import Any

import pytest

from common.errors import ResourceExhausted
from common.settings import load_settings
from stores.errors import StoreError
from stores.memory import MemoryStore
from tests.support.clock import FakeClock
from tests.support.doubles import StaticEngine, set_config
from usecases import track
from usecases.app import App
from usecases.context import Caller

EVENT = {"event": "preview_viewed"}


def _app(clock: FakeClock, env: dict[str, str] | None = None) -> App:
    return App(load_settings(env or {}), MemoryStore(), StaticEngine(), now=clock, rng=lambda n: 0)


def _send(app: App, n: int, uid: str = "alice") -> int:
    """How many of ``n`` events were accepted."""
    accepted = 0
    for _ in range(n):
        try:
            track.run(app, Caller(uid), EVENT)
            accepted += 1
        except ResourceExhausted:
            pass
    return accepted


def test_the_limit_frees_up_within_minutes_not_hours() -> None:
    clock = FakeClock()  # 10:00:00, the start of a minute window
    app = _app(clock)
    assert _send(app, 61) == 60
    with pytest.raises(ResourceExhausted) as refused:
        track.run(app, Caller("alice"), EVENT)
    details = refused.value.details or {}
    assert details["tier"] == "free" and details["scope"] == "events" and details["limit"] == 60
    # The first unit frees once the burst weighs 59 (60 * (1 - 1/60)): 10:01:01, rounded up.
    assert details["retryAfterSeconds"] == 62
    # 61 s later the previous minute's 60 weigh 59: exactly one more fits.
    clock.advance(seconds=61)
    assert _send(app, 3) == 1
    # At 10:02 the burst's minute no longer counts; the one event of 10:01:01 still does.
    clock.advance(seconds=59)
    assert _send(app, 61) == 59


def test_half_a_minute_later_half_the_burst_still_weighs() -> None:
    clock = FakeClock()
    app = _app(clock)
    assert _send(app, 60) == 60
    clock.advance(seconds=90)  # half-way through the next minute: 60 * 0.5 = 30 still count
    assert _send(app, 40) == 30


def test_each_user_has_their_own_minute() -> None:
    app = _app(FakeClock())
    assert _send(app, 60, "alice") == 60
    assert _send(app, 1, "alice") == 0
    assert _send(app, 60, "bob") == 60


def test_the_configured_limit_applies() -> None:
    clock = FakeClock()
    app = _app(clock, {"EXTERNAL_DATA_TRACK_LIMIT_PER_MINUTE": "5"})
    assert _send(app, 8) == 5
    clock.advance(minutes=2)
    assert _send(app, 8) == 5


class CommitFails(MemoryStore):
    """The limiter's increment works; the batch of the call's records fails."""

    def commit(self, writes: Any) -> None:
        raise StoreError("commit refused")


def test_an_event_the_store_refused_is_answered_recorded_false() -> None:
    # Contract 2.2: {eventId, recorded: true} says the event was recorded; it was not.
    store = CommitFails()
    set_config(store)
    app = App(load_settings({}), store, StaticEngine(), now=FakeClock(), rng=lambda n: 0)
    out = track.run(app, Caller("alice"), {"event": "upgrade_clicked"})
    assert out["recorded"] is False and out["eventId"]
    assert not any(p.startswith("external_data_usage/") for p in store.docs)

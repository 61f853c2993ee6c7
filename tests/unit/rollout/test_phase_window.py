"""The phase window never counts hours before the phase started: a failure while gating was
off, minutes before ``advance`` entered beta, is not beta's critical error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gating.rollout import CONFIG_PATH, parse
from rollout_control import changes, health
from stores.memory import MemoryStore

START = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
"""``advance`` off -> beta, half an hour into the 12:00 hour."""

HEALTHY: dict[str, Any] = {
    "requests": 100,
    "lat_ms": 800.0,
    "cohort_in": {"requests": 60, "previews": 50, "gateShown": 50, "conversions": 20},
}


def _beta_after_a_failure_while_off(store: MemoryStore, agg: Any) -> None:
    agg.traffic(START - timedelta(minutes=20), requests=10, errors=1)  # 12:10, phase off
    changes.advance(store, by="op", reason="start beta", now=START)
    for hour in range(1, 49):
        agg.traffic(START + timedelta(hours=hour), **HEALTHY)


@pytest.mark.parametrize("late", [timedelta(minutes=5), timedelta(minutes=45)])
def test_a_failure_before_the_phase_is_not_counted(
    store: MemoryStore, agg: Any, late: timedelta
) -> None:
    _beta_after_a_failure_while_off(store, agg)
    now = START + timedelta(hours=48) + late
    report = health.phase_health(store, parse(store.docs[CONFIG_PATH]), None, now)
    assert report.start == datetime(2026, 11, 20, 13, 0, tzinfo=UTC)
    errors = next(c for c in report.checks if c.name == "critical errors")
    assert (errors.value, errors.status) == ("0", "ok")
    res = changes.advance(store, by="op", reason="beta held 48 h", now=now)
    assert res.after["phase"] == "premium"


def test_a_failure_in_the_phase_still_counts(store: MemoryStore, agg: Any) -> None:
    _beta_after_a_failure_while_off(store, agg)
    agg.traffic(START + timedelta(minutes=40), requests=10, errors=1)  # 13:10, in beta
    now = START + timedelta(hours=48, minutes=5)
    with pytest.raises(changes.AdvanceBlocked) as exc:
        changes.advance(store, by="op", reason="r", now=now)
    assert [c.name for c in exc.value.checks] == ["critical errors"]


def test_the_window_start_is_a_full_hour_inside_the_phase() -> None:
    w = timedelta(hours=48)
    on_the_hour = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert health._window_start(w, on_the_hour, on_the_hour + w) == on_the_hour
    assert health._window_start(w, START, START + timedelta(hours=1)) == START + timedelta(
        minutes=30
    )
    # long in the phase: the window's own first hour, as before
    later = START + timedelta(hours=100)
    assert health._window_start(w, START, later) == datetime(2026, 11, 22, 16, 0, tzinfo=UTC)


def test_a_phase_in_its_first_hour_has_no_window_yet_and_the_report_says_so() -> None:
    from datetime import date

    from scripts.report import Period, Report, phase_section

    since = datetime(2026, 11, 27, 16, 12, tzinfo=UTC)
    now = datetime(2026, 11, 27, 16, 14, tzinfo=UTC)
    start = health._window_start(timedelta(hours=72), since, now)
    assert start == datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
    window = {"from": start, "to": now, "hours": 72.0}
    phase = {"phase": "premium", "verdict": "v", "window": window, "phaseSince": since}
    day = date(2026, 11, 27)
    report = Report("phase", Period(day, day), now, "test", {}, phase=phase)
    text = " ".join(str(t) for t in phase_section(report).text)
    assert "none yet: the first full hour in the phase starts 2026-11-27 17:00 UTC" in text

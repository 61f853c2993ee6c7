"""Contract section 3: a config change (the kill switch, a phase change) takes effect
everywhere within 30 seconds. Each test leaves the gated config in force again."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from scripts.devkit.emulator import GATED, Answer, call, seed
from stores.base import Write

BOUND_S = 30.0


def _set(store: Any, **changes: Any) -> None:
    doc = {**GATED, **changes, "version": int(time.time() * 1000)}
    store.commit([Write("config/externalDataRollout", doc, merge=False)])


def _wait_for(check: Callable[[], bool]) -> float:
    started = time.monotonic()
    while time.monotonic() - started < BOUND_S + 5:
        if check():
            return time.monotonic() - started
        time.sleep(0.5)
    return float("inf")


@pytest.fixture
def free_user(store: Any) -> Iterator[tuple[Any, str]]:
    user, cv = seed(store, "switch")
    yield user, cv
    _set(store)
    # Leave the functions gated again before the next test.
    assert _wait_for(lambda: _full(user, cv).status == "PERMISSION_DENIED") <= BOUND_S


def _full(user: Any, cv: str) -> Answer:
    return call("enrichCVWithExternalData", {"cvId": cv, "sources": ["linkedin"]}, user)


def test_the_kill_switch_ungates_everyone_within_30_s(
    store: Any, free_user: tuple[Any, str]
) -> None:
    user, cv = free_user
    assert _full(user, cv).status == "PERMISSION_DENIED"
    _set(store, components={**GATED["components"], "premiumGating": False})
    took = _wait_for(lambda: _full(user, cv).ok)
    assert took <= BOUND_S, "kill switch not in effect after 30 s"
    answer = _full(user, cv).result
    assert answer["access"] == "full" and answer["usage"]["limit"] == 100


def test_a_phase_change_reaches_the_functions_within_30_s(
    store: Any, free_user: tuple[Any, str]
) -> None:
    user, cv = free_user
    assert _full(user, cv).status == "PERMISSION_DENIED"
    # Beta at 0% with the fallback on: this user is outside the cohort, so not gated.
    _set(store, phase="beta", rolloutPercentage=0, fallbackEnabled=True)
    took = _wait_for(lambda: _full(user, cv).ok)
    assert took <= BOUND_S, "phase change not in effect after 30 s"

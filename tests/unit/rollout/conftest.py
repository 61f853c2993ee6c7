"""Fixtures of the rollout control plane's unit tests: a MemoryStore, a hand-moved clock and a
way to write synthetic minute/hour aggregates (through the real ``Recorder.aggregate_writes``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from common.histogram import bucket_of
from common.settings import Settings
from recording.recorder import Recorder
from stores.base import Inc
from stores.memory import MemoryStore


@pytest.fixture(autouse=True)
def _root_log_level() -> Any:
    """``rollout.py``'s ``main`` sets the root logger to ERROR for the process (a CLI's choice);
    a test that runs it must not leave later tests (in other packages) without their WARNINGs."""
    import logging

    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)


def enter_phase(
    store: MemoryStore, phase: str, at: datetime, *, pct: int | None = None, by: str = "setup"
) -> None:
    """Put the config in ``phase`` at ``at`` as an operator would (forced, a history entry by
    ``by``): the plan's percentage unless ``pct``, the fallback on below full."""
    from rollout_control import changes

    changes.set_fields(
        store,
        phase=phase,
        percentage=pct if pct is not None else {"beta": 1, "premium": 25, "full": 100}[phase],
        fallback=phase != "full",
        force=True,
        by=by,
        reason="test setup",
        now=at,
    )


NOW = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)
"""The injected "now": 30 s into the 12:00 minute, so the last complete minute is 11:59."""


class Aggregates:
    """Writes synthetic counters into the store's minute, hour and day buckets."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.recorder = Recorder(Settings(project_id="demo-test"), rng=lambda n: 0)

    def add(self, at: datetime, counters: Mapping[str, Any]) -> None:
        """Add raw counters (plain numbers) at ``at``."""
        self.store.commit(self.recorder.aggregate_writes(at, _inc(counters)))

    def minutes(self, end: datetime, n: int, **kw: Any) -> None:
        """The same traffic in each of the ``n`` complete minutes before ``end``'s minute."""
        start = end.replace(second=0, microsecond=0)
        for k in range(1, n + 1):
            self.traffic(start - timedelta(minutes=k) + timedelta(seconds=5), **kw)

    def traffic(
        self,
        at: datetime,
        *,
        requests: int = 0,
        errors: int = 0,
        successful: int | None = None,
        failed: int = 0,
        lat_ms: float = 300.0,
        cohort_in: Mapping[str, Any] | None = None,
        cohort_out: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        failing_users: int | None = None,
        sources: Mapping[str, Mapping[str, int]] | None = None,
        source_failing_users: int | None = None,
    ) -> None:
        """Enrichment traffic: ``requests`` calls of ``lat_ms``, ``errors`` service failures
        spread over ``failing_users`` distinct users (default 5 when there are errors; the same
        user names in every minute, so a window counts them once), and each source's
        ``upstreamFailures`` over ``source_failing_users`` (default 5 when it has some)."""
        if successful is None:
            successful = requests - errors - failed
        c = {
            "requests": requests,
            "errors": errors,
            "successful": successful,
            "failed": failed + errors,
        }
        doc: dict[str, Any] = {"c": c}
        if requests:
            doc["fn"] = {
                "enrichCVWithExternalData": {
                    "requests": requests,
                    "errors": errors,
                    "lat": {str(bucket_of(lat_ms)): requests},
                }
            }
        cohort: dict[str, Any] = {}
        for name, side in (("in", cohort_in), ("out", cohort_out)):
            if side:
                side = dict(side)
                lat = side.pop("lat_ms", None)
                n = side.get("requests", 0)
                if lat is not None and n:
                    side["lat"] = {str(bucket_of(lat)): n}
                cohort[name] = side
        if cohort:
            doc["cohort"] = cohort
        if extra:
            for k, v in extra.items():
                doc.setdefault("c", {})[k] = v
        if sources:
            doc["src"] = {name: dict(figures) for name, figures in sources.items()}
        users = (5 if errors else 0) if failing_users is None else failing_users
        minute_only: dict[str, Any] = {}
        if users:
            minute_only["failedUsers"] = {f"user{i}": Inc(1) for i in range(users)}
        by_source = {}
        for name, figures in (sources or {}).items():
            n = 5 if source_failing_users is None else source_failing_users
            if figures.get("upstreamFailures") and n:
                by_source[name] = {f"user{i}": Inc(1) for i in range(n)}
        if by_source:
            minute_only["srcFailedUsers"] = by_source
        self.store.commit(self.recorder.aggregate_writes(at, _inc(doc), minute_only or None))


def _inc(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _inc(v) for k, v in value.items()}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Inc(value)
    return value


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def agg(store: MemoryStore) -> Aggregates:
    return Aggregates(store)


@pytest.fixture
def now() -> datetime:
    return NOW

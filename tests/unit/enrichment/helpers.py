"""Helpers for the enrichment tests: their start time and an engine factory."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from common.settings import EnrichmentSettings
from enrichment.cache import MemoryCacheStore
from enrichment.engine import Engine
from tests.support.clock import FakeClock

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


Clock = FakeClock
"""The old name, still imported by the hostile-content tests (owned elsewhere); new code uses
``FakeClock`` from ``tests.support.clock``."""


# Fast retries so fault tests stay quick; everything else is the production default.
FAST = EnrichmentSettings(retry_base_ms=5)


def make_engine(
    clock: FakeClock | None = None,
    cache: Any = None,
    sources: Any = None,
    **overrides: Any,
) -> Engine:
    """An engine over ``FAST`` settings with ``overrides`` applied."""
    settings = replace(FAST, **overrides)
    return Engine(
        settings,
        cache if cache is not None else MemoryCacheStore(),
        now=clock or FakeClock(T0),
        sources=sources,
        rng=random.Random(1),
    )

"""Helpers for the enrichment tests: a settable clock and an engine factory."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from common.settings import EnrichmentSettings
from enrichment.cache import MemoryCacheStore
from enrichment.engine import Engine

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class Clock:
    """An injected clock that only moves when told to."""

    def __init__(self, at: datetime = T0) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **kwargs: float) -> None:
        self.at += timedelta(**kwargs)


# Fast retries so fault tests stay quick; everything else is the production default.
FAST = EnrichmentSettings(retry_base_ms=5)


def make_engine(
    clock: Clock | None = None,
    cache: Any = None,
    sources: Any = None,
    **overrides: Any,
) -> Engine:
    """An engine over ``FAST`` settings with ``overrides`` applied."""
    settings = replace(FAST, **overrides)
    return Engine(
        settings,
        cache if cache is not None else MemoryCacheStore(),
        now=clock or Clock(),
        sources=sources,
        rng=random.Random(1),
    )

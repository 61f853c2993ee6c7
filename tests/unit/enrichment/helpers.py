"""Helpers for the enrichment tests: their start time and an engine factory."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from common.settings import EnrichmentSettings
from enrichment.cache import CacheStore, MemoryCacheStore
from enrichment.engine import Engine
from enrichment.model import SourceError, SourceReport
from enrichment.sources.base import Source
from tests.support.clock import FakeClock

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


Clock = FakeClock
"""The old name, still imported by the hostile-content tests (owned elsewhere); new code uses
``FakeClock`` from ``tests.support.clock``."""


# Fast retries so fault tests stay quick; everything else is the production default.
FAST = EnrichmentSettings(retry_base_ms=5)


def make_engine(
    clock: FakeClock | None = None,
    cache: CacheStore | None = None,
    sources: Mapping[str, Source] | None = None,
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


def error_of(report: SourceReport) -> SourceError:
    """The error of a source that did not succeed; fails the test when there is none."""
    assert report.error is not None, f"{report.source} has no error (status {report.status})"
    return report.error

"""Fixtures of the enrichment tests."""

from __future__ import annotations

import pytest

from enrichment.cache import MemoryCacheStore
from tests.support.clock import FakeClock
from tests.unit.enrichment.helpers import T0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def cache() -> MemoryCacheStore:
    return MemoryCacheStore()

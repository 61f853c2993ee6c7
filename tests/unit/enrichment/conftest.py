"""Fixtures of the enrichment tests."""

from __future__ import annotations

import pytest

from enrichment.cache import MemoryCacheStore
from tests.unit.enrichment.helpers import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache() -> MemoryCacheStore:
    return MemoryCacheStore()

"""Fixtures for the observability tests: the loopback Monitoring fake, an in-memory store and
the real recorder's aggregate writes (so findings and exports see what calls would write)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from common.settings import load_settings
from recording.recorder import Recorder
from stores.memory import MemoryStore
from tests.support.fake_monitoring import FakeMonitoring, running


@pytest.fixture
def fake() -> Iterator[FakeMonitoring]:
    """A started fake of the Monitoring API on 127.0.0.1."""
    with running() as f:
        yield f


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def recorder() -> Recorder:
    """The recorder as the functions build it, shard 0 always (the sum is what matters)."""
    return Recorder(load_settings({}), rng=lambda n: 0)

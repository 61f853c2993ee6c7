"""Fixtures for the monitoring tests: the loopback Monitoring fake and the CLI module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.fake_monitoring import FakeMonitoring, running
from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[3]
MONITORING = ROOT / "monitoring"


@pytest.fixture
def fake() -> Iterator[FakeMonitoring]:
    """A started fake of the Monitoring API on 127.0.0.1."""
    with running() as f:
        yield f


@pytest.fixture(scope="session")
def cli() -> ModuleType:
    """``scripts/monitoring.py`` imported as a module (its ``main`` takes argv and a stream)."""
    return load_script("monitoring", "monitoring_cli", reuse=True)

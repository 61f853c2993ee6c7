"""Fixtures for the monitoring tests: the loopback Monitoring fake and the CLI module."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.fake_monitoring import FakeMonitoring, running

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
    name = "monitoring_cli"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "monitoring.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module

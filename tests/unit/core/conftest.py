"""Fixtures for the gating library's unit tests (doubles live in tests/support/doubles.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.support.doubles import clock, engine, store, svc  # noqa: F401

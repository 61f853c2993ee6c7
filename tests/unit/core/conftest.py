"""Fixtures for the gating library's unit tests (doubles live in tests/support/doubles.py)."""

from __future__ import annotations

from tests.support.doubles import clock, engine, store, svc  # noqa: F401

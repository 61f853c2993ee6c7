"""Fixtures for the support and data-rights unit tests: the core's doubles (in-memory store,
fake clock, static engine, an ``App`` over them)."""

from __future__ import annotations

from tests.support.doubles import clock, engine, store, svc  # noqa: F401

"""Moved to ``scripts/devkit/fakes.py``: this re-export keeps the modules that still import the
old path working (tests/unit/enrichment/test_hostile_*.py and scripts/bench_hostile.py, owned by
work in progress elsewhere). Import from ``scripts.devkit.fakes``; delete this file once nothing
imports it."""

from __future__ import annotations

from scripts.devkit.fakes import FIXTURES, FakeService, Reply, fake_brave, fake_github, fake_website

__all__ = ["FIXTURES", "FakeService", "Reply", "fake_brave", "fake_github", "fake_website"]

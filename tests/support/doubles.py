"""Test doubles for the gating library's unit tests: the clock fixture (``tests.support.clock``), a small engine double
(the real engine has its own tests under tests/unit/enrichment) and seeding helpers."""

from __future__ import annotations

import time
from typing import Any

import pytest

from common.settings import load_settings
from common.vocab import ResultStatus, SourceStatus
from enrichment.model import EnrichmentResult, SourceReport
from stores.memory import MemoryStore
from tests.support.clock import FakeClock
from usecases.app import App


class StaticEngine:
    """Returns a fixed multi-item result and counts calls."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.read_aheads: list[Any] = []
        self.fail = False
        self.status = ResultStatus.SUCCESS
        self.data: dict[str, Any] | None = None
        """When set, the result's data instead of the default."""
        self.delay_s = 0.0

    def read_ahead(self, inp: Any) -> None:
        self.read_aheads.append(inp)

    def from_cache(self, ahead: Any) -> None:
        """No cache: every call runs ``enrich``."""
        return None

    def enrich(self, inp: Any, ahead: Any = None) -> EnrichmentResult:
        self.calls.append(inp)
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("boom")
        data = self.data or {
            "github": {"login": "octocat", "repositories": [{"name": f"r{i}"} for i in range(6)]},
            "skills": [{"name": f"s{i}"} for i in range(5)],
            "projects": [{"name": f"p{i}"} for i in range(2)],
        }
        failed = self.status is ResultStatus.FAILED
        status = SourceStatus.FAILED if failed else SourceStatus.SUCCESS
        report = SourceReport("github", status, 0 if failed else 6, 12, False)
        return EnrichmentResult(data, (report,), self.status, failed, 15)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def engine() -> StaticEngine:
    return StaticEngine()


@pytest.fixture
def svc(store: MemoryStore, engine: StaticEngine, clock: FakeClock) -> App:
    return App(load_settings({}), store, engine, now=clock, rng=lambda n: 0)


def seed_user(
    store: MemoryStore, uid: str, premium: bool = False, groups: list[str] | None = None
) -> None:
    doc: dict[str, Any] = {"displayName": uid}
    if premium:
        doc["subscription"] = {"tier": "premium", "status": "active"}
    if groups:
        doc["rolloutGroups"] = groups
    store.docs[f"users/{uid}"] = doc
    store.docs[f"cvs/cv-{uid}"] = {"userId": uid}


def set_config(store: MemoryStore, **fields: Any) -> None:
    doc = {"phase": "full", "rolloutPercentage": 100, "fallbackEnabled": False, "version": 1}
    doc.update(fields)
    store.docs["config/externalDataRollout"] = doc

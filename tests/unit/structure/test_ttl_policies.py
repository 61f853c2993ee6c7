"""Every document the functions write with an ``expireAt`` is deleted by Firestore's TTL policy
on its collection group (``firestore.indexes.json``): an ``expireAt`` without a policy is only a
promise. The idempotency records (one hour, holding a whole answer), the cohort seats and the
breaker probes had none."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from common.settings import load_settings
from enrichment.cache import CacheEntry, StoreCacheStore
from stores.memory import MemoryStore
from stores.schema import breaker_probe_path
from tests.support.clock import FakeClock
from tests.support.doubles import StaticEngine, seed_user, set_config
from usecases import enrich, source_switches, track
from usecases.app import App
from usecases.context import Caller

ROOT = Path(__file__).resolve().parents[3]


def _ttl_groups() -> set[str]:
    doc = json.loads((ROOT / "firestore.indexes.json").read_text())
    return {
        o["collectionGroup"]
        for o in doc["fieldOverrides"]
        if o.get("ttl") is True and o["fieldPath"] == "expireAt"
    }


def _expiring(store: MemoryStore) -> dict[str, str]:
    """Collection group → one path of each group holding a document with ``expireAt``."""
    out: dict[str, str] = {}
    for path, doc in store.docs.items():
        if isinstance(doc, dict) and "expireAt" in doc:
            out.setdefault(path.split("/")[-2], path)
    return out


def test_every_expiring_document_has_a_ttl_policy() -> None:
    store, clock = MemoryStore(), FakeClock()
    app = App(load_settings({}), store, StaticEngine(), now=clock, rng=lambda n: 0)
    set_config(store, phase="beta", rolloutPercentage=100, fallbackEnabled=True, maxCohortUsers=5)
    seed_user(store, "pat", premium=True)
    seed_user(store, "fay")
    enrich.run(app, Caller("pat"), {"cvId": "cv-pat", "idempotencyKey": "key-12345678"})
    enrich.run(app, Caller("fay"), {"cvId": "cv-fay", "mode": "preview"})
    track.run(app, Caller("fay"), {"event": "upgrade_clicked"})
    source_switches._drew_ticket(app, breaker_probe_path("github", clock()), clock())
    entry: dict[str, Any] = {"skills": []}
    later = clock() + timedelta(hours=1)
    StoreCacheStore(store).put("github_x", CacheEntry(entry, clock(), later))
    expiring = _expiring(store)
    # The flows above wrote every kind the policies must cover (a guard on this test itself).
    assert {"external_data_idempotency", "members", "external_data_breaker_probes"} <= set(expiring)
    missing = {g: p for g, p in expiring.items() if g not in _ttl_groups()}
    assert not missing, f"expireAt without a TTL policy: {missing}"

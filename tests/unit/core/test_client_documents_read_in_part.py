"""A user's profile and a CV are written by their owner, up to a megabyte each (the rules bound
their named fields, not the rest). The service reads them only for the fields it decides on
(``GATE_FIELDS``, ``CV_FIELDS``): a warm call re-reads its CV's owner on every call, and reading
a whole 800 KB CV cost that call about 65 ms of CPU on the emulator, holding the interpreter
lock every other call of the instance waits for."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from common.errors import ResourceExhausted
from common.settings import load_settings
from gating.entitlements import GATE_FIELDS
from stores.base import Fields
from stores.memory import MemoryStore
from stores.schema import CV_FIELDS
from tests.support.clock import FakeClock
from tests.support.doubles import StaticEngine, seed_user, set_config
from usecases import cv_deleted, enrich, stats
from usecases.app import App
from usecases.context import Caller

BULK = {"experience": [{"text": "x" * 1000} for _ in range(200)], "notes": "y" * 50_000}
"""What an owner may add to their own profile or CV: about 250 KB."""


class Noting(MemoryStore):
    """Notes each document read and the fields it was read for (``None``: whole)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, tuple[str, ...] | None]] = []

    def get_many(
        self, paths: Sequence[str], fields: Fields | None = None
    ) -> dict[str, dict[str, Any] | None]:
        masks = fields or {}
        self.reads += [(p, tuple(masks[p]) if p in masks else None) for p in paths]
        return super().get_many(paths, fields)


def _kind(path: str) -> str | None:
    parts = path.split("/")
    if len(parts) == 2 and parts[0] in ("users", "cvs"):
        return parts[0]
    return None


def test_profiles_and_cvs_are_read_only_for_the_fields_the_service_decides_on() -> None:
    store = Noting()
    set_config(store)
    for uid, premium in (("pat", True), ("fay", False)):
        seed_user(store, uid, premium=premium)
        store.docs[f"users/{uid}"].update(BULK)
        store.docs[f"cvs/cv-{uid}"].update(BULK)
    clock = FakeClock()
    env = {"EXTERNAL_DATA_RATE_LIMIT_FREE_HOURLY": "1"}
    app = App(load_settings(env), store, StaticEngine(), now=clock, rng=lambda n: 0)

    first = enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})  # cold: user and CV read
    again = enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})  # warm: the CV re-read
    assert first["status"] == again["status"] == "success"
    assert first["access"] == "full"
    preview = {"cvId": "cv-fay", "mode": "preview"}
    assert enrich.run(app, Caller("fay"), preview)["access"] == "preview"
    with pytest.raises(ResourceExhausted):  # a cached "free" is read again before a refusal
        enrich.run(app, Caller("fay"), preview)
    assert stats.run(app, Caller("pat"), {})["tier"] == "premium"
    store.docs.pop("cvs/cv-fay")
    cv_deleted.run(app, "cv-fay")

    client_docs = [(p, names) for p, names in store.reads if _kind(p)]
    want = {"users": GATE_FIELDS, "cvs": CV_FIELDS}
    assert [(p, names) for p, names in client_docs if names != want[_kind(p) or ""]] == []
    read = [p for p, _ in client_docs]
    # Every kind of read above happened: the cold load, the warm re-read (pat's CV twice at
    # least), the user re-read before a refusal (fay's profile twice), stats, the trigger.
    assert read.count("cvs/cv-pat") >= 2
    assert read.count("users/fay") >= 2
    assert read.count("users/pat") >= 2
    assert "cvs/cv-fay" in read

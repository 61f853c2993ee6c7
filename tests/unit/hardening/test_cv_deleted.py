"""``onCvDeleted`` (issue 8, "Why" 8): a deleted CV's enrichment results go with it; results
made after the deletion for whoever owns a re-created CV id now are kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from common.settings import load_settings
from stores.memory import MemoryStore
from tests.support.doubles import StaticEngine
from usecases import cv_deleted
from usecases.app import App


def _app() -> tuple[App, MemoryStore]:
    store = MemoryStore()
    store.docs.update(
        {
            "cvs/cv-b/externalData/latest": {"userId": "bob", "status": "success"},
            "cvs/cv-a/externalData/latest": {"userId": "alice", "status": "success"},
            "cvs/cv-a/externalData/older": {"userId": "alice", "status": "partial"},
            "cvs/cv-b": {"userId": "bob"},
        }
    )
    return App(load_settings({}), store, StaticEngine()), store


def test_a_deleted_cvs_results_are_deleted_and_nothing_else() -> None:
    app, store = _app()
    assert cv_deleted.run(app, "cv-a") == 2
    assert not [p for p in store.docs if p.startswith("cvs/cv-a/")]
    assert store.docs["cvs/cv-b/externalData/latest"]["userId"] == "bob"
    assert store.docs["cvs/cv-b"] == {"userId": "bob"}


def test_a_re_created_cv_keeps_its_new_owners_result_only() -> None:
    app, store = _app()
    store.docs["cvs/cv-a"] = {"userId": "carol"}
    store.docs["cvs/cv-a/externalData/latest"] = {"userId": "carol", "status": "success"}
    assert cv_deleted.run(app, "cv-a") == 1
    assert {p for p in store.docs if p.startswith("cvs/cv-a/")} == {"cvs/cv-a/externalData/latest"}


def test_a_cv_without_results_is_a_no_op() -> None:
    app, store = _app()
    before = dict(store.docs)
    assert cv_deleted.run(app, "cv-none") == 0
    assert store.docs == before


DELETED = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def test_a_cv_its_owner_deleted_and_re_created_loses_the_old_cvs_results() -> None:
    # Contract 5: deleting a CV deletes its externalData, though its owner re-created the id
    # before the trigger ran (the old result is the deleted CV's, made for the same user).
    app, store = _app()
    store.docs["cvs/cv-a"] = {"userId": "alice"}
    store.docs["cvs/cv-a/externalData/latest"]["at"] = DELETED - timedelta(minutes=5)
    store.docs["cvs/cv-a/externalData/older"]["at"] = DELETED - timedelta(days=1)
    assert cv_deleted.run(app, "cv-a", DELETED) == 2
    assert not [p for p in store.docs if p.startswith("cvs/cv-a/")]


def test_a_result_made_for_the_re_created_cv_after_the_deletion_stays() -> None:
    app, store = _app()
    store.docs["cvs/cv-a"] = {"userId": "alice"}
    store.docs["cvs/cv-a/externalData/latest"]["at"] = DELETED + timedelta(seconds=3)
    store.docs["cvs/cv-a/externalData/older"]["at"] = DELETED - timedelta(seconds=3)
    assert cv_deleted.run(app, "cv-a", DELETED) == 1
    assert {p for p in store.docs if p.startswith("cvs/cv-a/")} == {"cvs/cv-a/externalData/latest"}
    assert cv_deleted.run(app, "cv-a", DELETED) == 0  # delivered again: nothing more goes

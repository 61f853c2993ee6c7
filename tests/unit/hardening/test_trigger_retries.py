"""The Firestore triggers try a step again while the store fails (firebase-functions 0.6.0
deploys them with retry off): a deleted CV's results or a deleted user's records must not
outlive one refused write (contract 2.5 and 5)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from common.settings import load_settings
from stores.errors import StoreError
from stores.memory import MemoryStore
from tests.support.doubles import StaticEngine
from usecases import cv_deleted
from usecases.app import App
from usecases.hooks import retried


class FailsFirst(MemoryStore):
    """The first ``n`` deletes fail, as a store that stopped answering for a while."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    def delete_many(self, paths: Any) -> Any:
        if self.left:
            self.left -= 1
            raise StoreError("deadline exceeded")
        return super().delete_many(paths)


def test_a_cv_deletion_that_fails_twice_is_done_on_the_third_try() -> None:
    store = FailsFirst(2)
    store.docs["cvs/cv-a/externalData/latest"] = {"userId": "alice"}
    app = App(load_settings({}), store, StaticEngine())
    at = datetime(2026, 11, 27, tzinfo=UTC)
    assert retried(cv_deleted.run, app, "cv-a", at, waits=(0.0, 0.0)) == 1
    assert "cvs/cv-a/externalData/latest" not in store.docs


def test_a_store_that_keeps_failing_raises_after_the_last_try() -> None:
    store = FailsFirst(5)
    store.docs["cvs/cv-a/externalData/latest"] = {"userId": "alice"}
    app = App(load_settings({}), store, StaticEngine())
    with pytest.raises(StoreError):
        retried(cv_deleted.run, app, "cv-a", None, waits=(0.0, 0.0))
    assert store.left == 2  # three tries: the first and two more

"""What only Firestore's transactions do: hold a lock. On the emulator (this suite fails, never
skips, without it), a compare-and-set (one conditional Commit) that meets the lock of another
transaction holding the document is aborted, and so is each retry within the store's retry
time: it is ``Contended``, nothing had landed, and made again once the lock is gone it lands.
One against a version that moved is a plain ``ConfigConflict``."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from stores.errors import ConfigConflict, Contended
from stores.firestore import FirestoreStore


def test_a_lost_lock_is_contended_and_a_moved_version_is_not(store: Any) -> None:
    assert isinstance(store, FirestoreStore)
    path = f"contract_{uuid.uuid4().hex[:10]}/config"
    store.compare_and_set(path, 0, {"version": 1}, [])
    holder = store.client.transaction()
    holder._begin()  # a transaction left open, as a slow racing writer's is
    store.client.document(path).get(transaction=holder)
    try:
        with pytest.raises(Contended):
            store.compare_and_set(path, 1, {"version": 2}, [])
    finally:
        holder._rollback()
    assert store.get_many([path])[path] == {"version": 1}
    store.compare_and_set(path, 1, {"version": 2}, [])
    with pytest.raises(ConfigConflict) as refused:
        store.compare_and_set(path, 1, {"version": 2, "late": True}, [])
    assert not isinstance(refused.value, Contended)

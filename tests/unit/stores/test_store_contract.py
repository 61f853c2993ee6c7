"""One behaviour suite for the ``DocumentStore`` protocol (limits' ``ALL_STORAGES`` pattern):
the in-memory store always, ``FirestoreStore`` when the Firestore emulator is up (``make test``
runs this file again under the emulators)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from stores.base import DocumentStore, Inc, Write
from stores.errors import ConfigConflict
from stores.memory import MemoryStore
from tests.support.emulated import firestore_emulator

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def _stores() -> Iterator[object]:
    yield pytest.param(MemoryStore, id="memory")
    if firestore_emulator():

        def firestore() -> DocumentStore:
            from stores.firestore import FirestoreStore, make_client

            return FirestoreStore(make_client())

        yield pytest.param(firestore, id="firestore-emulator")


@pytest.fixture(params=list(_stores()))
def store(request: pytest.FixtureRequest) -> DocumentStore:
    make: Callable[[], DocumentStore] = request.param
    return make()


@pytest.fixture
def col() -> str:
    """A collection of this test's own, so runs on one emulator never see each other."""
    return f"contract_{uuid.uuid4().hex[:10]}"


def test_get_many_maps_missing_documents_to_none(store: DocumentStore, col: str) -> None:
    store.commit([Write(f"{col}/a", {"x": 1}, merge=False)])
    got = store.get_many([f"{col}/a", f"{col}/b"])
    assert got == {f"{col}/a": {"x": 1}, f"{col}/b": None}


def test_a_read_for_some_fields_gets_only_those(store: DocumentStore, col: str) -> None:
    # The gate reads a client-written document (a CV, a profile) for the fields it decides on.
    big = {"userId": "u1", "title": "t", "experience": [{"text": "x" * 500}] * 50}
    store.commit(
        [
            Write(f"{col}/cv", big, merge=False),
            Write(f"{col}/bare", {"title": "no owner"}, merge=False),
            Write(f"{col}/other", {"userId": "u2", "n": 1}, merge=False),
        ]
    )
    paths = [f"{col}/cv", f"{col}/bare", f"{col}/gone", f"{col}/other"]
    masks = dict.fromkeys(paths[:3], ("userId",))
    want = {
        f"{col}/cv": {"userId": "u1"},
        f"{col}/bare": {},  # there, without the field: not missing
        f"{col}/gone": None,
        f"{col}/other": {"userId": "u2", "n": 1},  # no mask named: whole
    }
    assert store.get_many(paths, masks) == want
    assert store.start_get_many(paths, None, masks)() == want
    two = store.get_many([f"{col}/cv"], {f"{col}/cv": ("userId", "title", "absent")})
    assert two == {f"{col}/cv": {"userId": "u1", "title": "t"}}


def test_a_started_read_returns_what_get_many_returns(store: DocumentStore, col: str) -> None:
    when = T0 + timedelta(minutes=5)
    store.commit(
        [
            Write(f"{col}/a", {"x": 1, "at": when, "m": {"s": "t", "l": [1, "two"]}}, merge=False),
            Write(f"{col}/c", {"y": None}, merge=False),
        ]
    )
    paths = [f"{col}/a", f"{col}/b", f"{col}/c"]
    pending = store.start_get_many(paths, 2.0)
    store.increment(f"{col}/counter", "n", 1, {})  # another round trip while it is in flight
    assert pending() == store.get_many(paths)
    assert store.start_get_many([])() == {}
    got = store.get_many(paths)
    a = got[f"{col}/a"]
    assert got[f"{col}/b"] is None and a is not None and a["m"] == {"s": "t", "l": [1, "two"]}


def test_merge_deep_merges_maps_and_applies_increments(store: DocumentStore, col: str) -> None:
    path = f"{col}/m"
    store.commit([Write(path, {"c": {"n": Inc(1), "keep": "k"}, "top": 1})])
    store.commit([Write(path, {"c": {"n": Inc(2), "other": Inc(5)}})])
    assert store.get_many([path])[path] == {"c": {"n": 3, "keep": "k", "other": 5}, "top": 1}


def test_replace_drops_fields_that_are_not_written(store: DocumentStore, col: str) -> None:
    path = f"{col}/r"
    store.commit([Write(path, {"a": 1, "b": 2}, merge=False)])
    store.commit([Write(path, {"a": 3}, merge=False)])
    assert store.get_many([path])[path] == {"a": 3}


def test_increment_returns_each_caller_a_distinct_value(store: DocumentStore, col: str) -> None:
    path = f"{col}/counter"
    drawn: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(10):
            value = store.increment(path, "count", 1, {"expireAt": T0})
            with lock:
                drawn.append(value)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(drawn) == list(range(1, 81))
    assert store.increment(path, "count", -1, {}) == 79
    doc = store.get_many([path])[path]
    assert doc is not None and doc["count"] == 79 and doc["expireAt"] == T0


def test_a_started_increment_applies_once_and_answers_its_own_value(
    store: DocumentStore, col: str
) -> None:
    path = f"{col}/started"
    first = store.start_increment(path, "count", 1, {"expireAt": T0})
    second = store.start_increment(path, "count", 1, {"expireAt": T0})
    assert sorted([second(), first()]) == [1, 2]  # collected in either order, each its own
    assert store.increment(path, "count", 1, {}) == 3
    doc = store.get_many([path])[path]
    assert doc is not None and doc["count"] == 3 and doc["expireAt"] == T0


def test_concurrent_commits_and_increments_each_apply_once_with_their_own_values(
    store: DocumentStore, col: str
) -> None:
    """16 threads, as a busy instance's request threads: each increments one of 4 shared
    counters (started, collected after a commit of its own, as an enrichment does) and commits
    records to a shared shard and a document of its own. On Firestore most of these go out
    together (``stores.group_commit``); every value drawn is still distinct and every write
    lands once."""
    drawn: dict[int, list[int]] = {k: [] for k in range(4)}
    lock = threading.Lock()

    def calls(t: int) -> None:
        for i in range(12):
            k = (t + i) % 4
            pending = store.start_increment(f"{col}/limit{k}", "count", 1, {"expireAt": T0})
            store.commit(
                [
                    Write(f"{col}/shard{i % 3}", {"requests": Inc(1)}),
                    Write(f"{col}/event-{t}-{i}", {"t": t, "i": i}, merge=False),
                ]
            )
            value = pending()
            with lock:
                drawn[k].append(value)

    threads = [threading.Thread(target=calls, args=(t,)) for t in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert all(sorted(v) == list(range(1, 49)) for v in drawn.values()), drawn
    shards = store.get_many([f"{col}/shard{j}" for j in range(3)])
    assert sum(int((d or {})["requests"]) for d in shards.values()) == 16 * 12
    events = store.get_many([f"{col}/event-{t}-{i}" for t in range(16) for i in range(12)])
    assert events == {
        f"{col}/event-{t}-{i}": {"t": t, "i": i} for t in range(16) for i in range(12)
    }
    group = getattr(store, "group", None)
    if group is not None:  # FirestoreStore: the calls went together in fewer Commits
        assert group.commits < group.members, (group.commits, group.members)


def test_query_filters_orders_and_limits(store: DocumentStore, col: str) -> None:
    store.commit(
        [
            Write(f"{col}/d{i}", {"g": "m" if i % 2 else "h", "at": T0 + timedelta(minutes=i)})
            for i in range(6)
        ]
    )
    rows = store.query(
        col, [("g", "==", "m"), ("at", ">=", T0)], order_by="at", descending=True, limit=2
    )
    assert [path for path, _ in rows] == [f"{col}/d5", f"{col}/d3"]
    assert store.query(col, [("g", "==", "none")]) == []


def test_compare_and_set_refuses_a_stale_version(store: DocumentStore, col: str) -> None:
    path = f"{col}/config"
    store.compare_and_set(path, 0, {"version": 1, "v": "a"}, [Write(f"{col}/h1", {"n": 1})])
    assert store.get_many([path, f"{col}/h1"]) == {
        path: {"version": 1, "v": "a"},
        f"{col}/h1": {"n": 1},
    }
    with pytest.raises(ConfigConflict):
        store.compare_and_set(path, 0, {"version": 1, "v": "b"}, [Write(f"{col}/h2", {"n": 2})])
    assert store.get_many([path, f"{col}/h2"]) == {
        path: {"version": 1, "v": "a"},
        f"{col}/h2": None,
    }


def test_replace_if_unchanged_refuses_a_document_changed_since_it_was_read(
    store: DocumentStore, col: str
) -> None:
    """A writer that keeps no ``version`` (billing) changes the document between the read and
    the conditional write: the write is refused and nothing of it lands."""
    path = f"{col}/user"
    store.commit([Write(path, {"name": "x", "at": T0, "sub": {"tier": "free"}}, merge=False)])
    read = store.get_many([path])[path]
    store.commit([Write(path, {"sub": {"tier": "premium"}})])  # merge, no version
    with pytest.raises(ConfigConflict):
        store.replace_if_unchanged(path, read, {"name": "y"}, [Write(f"{col}/a1", {"n": 1})])
    assert store.get_many([path, f"{col}/a1"]) == {
        path: {"name": "x", "at": T0, "sub": {"tier": "premium"}},
        f"{col}/a1": None,
    }
    again = store.get_many([path])[path]
    store.replace_if_unchanged(path, again, {"name": "y"}, [Write(f"{col}/a2", {"n": 2})])
    assert store.get_many([path, f"{col}/a2"]) == {path: {"name": "y"}, f"{col}/a2": {"n": 2}}
    with pytest.raises(ConfigConflict):
        store.replace_if_unchanged(f"{col}/absent", {"name": "y"}, {"name": "z"}, [])
    store.replace_if_unchanged(f"{col}/absent", None, {"name": "new"}, [])
    with pytest.raises(ConfigConflict):
        store.replace_if_unchanged(f"{col}/absent", None, {"name": "again"}, [])
    assert store.get_many([f"{col}/absent"])[f"{col}/absent"] == {"name": "new"}


@pytest.mark.parametrize("corrupt", ["7", 7.0, True, None, "abc"])
def test_a_version_that_is_not_an_integer_reads_as_0(
    store: DocumentStore, col: str, corrupt: object
) -> None:
    """The config parser reads such a version as 0, so the writers expect 0: the store must
    agree, or every change (the kill switch included) is refused as a lost race, forever."""
    path = f"{col}/config"
    store.commit([Write(path, {"version": corrupt, "v": "bad"}, merge=False)])
    store.compare_and_set(path, 0, {"version": 1, "v": "fixed"}, [])
    assert store.get_many([path])[path] == {"version": 1, "v": "fixed"}


def test_delete_many_removes_the_named_documents_only(store: DocumentStore, col: str) -> None:
    store.commit([Write(f"{col}/{n}", {"n": n}, merge=False) for n in ("a", "b", "c")])
    store.commit([Write(f"{col}/a/sub/x", {"n": "x"}, merge=False)])
    store.delete_many([f"{col}/a", f"{col}/c", f"{col}/missing"])
    got = store.get_many([f"{col}/a", f"{col}/b", f"{col}/c", f"{col}/a/sub/x"])
    assert got == {
        f"{col}/a": None,
        f"{col}/b": {"n": "b"},
        f"{col}/c": None,
        f"{col}/a/sub/x": {"n": "x"},  # sub-collections are not deleted with their parent
    }
    store.delete_many([])


def test_list_paths_by_id_prefix(store: DocumentStore, col: str) -> None:
    ids = ["u1_enrich_1", "u1_track_2", "u10_enrich_1", "u2_enrich_1", "u1"]
    store.commit([Write(f"{col}/{i}", {"count": 1}, merge=False) for i in ids])
    store.commit([Write(f"{col}/u1_enrich_1/sub/u1_x", {"n": 1}, merge=False)])
    assert sorted(store.list_paths(col, "u1_")) == [f"{col}/u1_enrich_1", f"{col}/u1_track_2"]
    assert sorted(store.list_paths(col)) == sorted(f"{col}/{i}" for i in ids)
    assert store.list_paths(col, "nobody") == []


def test_query_array_contains(store: DocumentStore, col: str) -> None:
    store.commit(
        [
            Write(f"{col}/a", {"groups": ["beta-testers", "x"]}, merge=False),
            Write(f"{col}/b", {"groups": ["x"]}, merge=False),
            Write(f"{col}/c", {"groups": "beta-testers"}, merge=False),
        ]
    )
    rows = store.query(col, [("groups", "array_contains", "beta-testers")])
    assert [path for path, _ in rows] == [f"{col}/a"]

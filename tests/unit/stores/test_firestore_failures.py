"""``FirestoreStore`` against loopback servers (the real client library, no emulator): how its
failures are classified (a refused write applied nothing; a write that got no answer may have
landed), and ``hurried``, the brief deadline without retries used for records written while
the store is failing."""

from __future__ import annotations

import functools
import socket
import threading
import time
from collections.abc import Callable, Iterator

import grpc  # type: ignore[import-untyped]
import pytest

from stores.base import Write
from stores.errors import StoreError, StoreUnanswered
from stores.firestore import FirestoreStore, make_client
from tests.support.failing_firestore import failing_firestore


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A TCP server that accepts connections and never answers (a frozen backend)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            held.append(conn)

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    t.join()
    for conn in held:
        conn.close()
    server.close()


def _grpc_server(
    code: grpc.StatusCode, details: str = "refused by the test server"
) -> tuple[grpc.Server, str]:
    """A gRPC server whose Firestore Commit and GetDocument fail with ``code``."""
    server, host, _ = failing_firestore(lambda _method: (code, details))
    return server, host


@pytest.fixture
def store_at(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, float, float], FirestoreStore]:
    def make(host: str, deadline_s: float, retry_s: float) -> FirestoreStore:
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", host)
        return FirestoreStore(make_client("demo-test"), deadline_s=deadline_s, retry_s=retry_s)

    return make


def _timed(op: Callable[[], object]) -> tuple[float, StoreError]:
    started = time.monotonic()
    with pytest.raises(StoreError) as err:
        op()
    return time.monotonic() - started, err.value


WRITE = [Write("c/d", {"n": 1})]


def test_a_hurried_store_gives_up_at_its_own_deadline_without_retrying(
    black_hole: str, store_at: Callable[[str, float, float], FirestoreStore]
) -> None:
    store = store_at(black_hole, 1.0, 3.0)
    quick = store.hurried(0.2)
    took, err = _timed(lambda: quick.commit(WRITE))
    assert took < 0.8, took
    assert isinstance(err, StoreUnanswered) and err.maybe_applied
    took, _ = _timed(lambda: quick.get_many(["c/d"]))
    assert took < 0.8, took
    # The store it came from keeps its deadline (and its retries).
    took, err = _timed(lambda: store.commit(WRITE))
    assert took >= 1.0, took
    assert isinstance(err, StoreUnanswered)


def test_hurried_keeps_the_class_of_the_store(
    black_hole: str, store_at: Callable[[str, float, float], FirestoreStore]
) -> None:
    class Counting(FirestoreStore):
        pass

    store = store_at(black_hole, 1.0, 0.0)
    counting = Counting(store.client)
    quick = counting.hurried(0.2)
    assert type(quick) is Counting and quick.client is counting.client


@pytest.mark.parametrize(
    ("code", "maybe_applied"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, False),
        (grpc.StatusCode.FAILED_PRECONDITION, False),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, False),
        (grpc.StatusCode.UNAVAILABLE, True),
        (grpc.StatusCode.INTERNAL, True),
        (grpc.StatusCode.UNKNOWN, True),
    ],
)
def test_a_refused_write_applied_nothing_and_an_unanswered_one_may_have(
    store_at: Callable[[str, float, float], FirestoreStore],
    code: grpc.StatusCode,
    maybe_applied: bool,
) -> None:
    server, host = _grpc_server(code)
    try:
        store = store_at(host, 2.0, 0.3)
        _, err = _timed(lambda: store.commit(WRITE))
        assert getattr(err, "maybe_applied", False) is maybe_applied, (code, err)
        _, err = _timed(lambda: store.hurried(1.0).get_many(["c/d"]))
        assert getattr(err, "maybe_applied", False) is maybe_applied, (code, err)
    finally:
        server.stop(None)


def test_a_started_read_is_sent_without_waiting_and_its_collection_keeps_the_deadline(
    black_hole: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11: ``start_get_many`` returns before any answer, and collecting it is bounded by
    the deadline it was given (0.5 s), not the store's own 5 s or its retries."""
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", black_hole)
    store = FirestoreStore(make_client("demo-started-read"), deadline_s=5.0)
    started = time.monotonic()
    pending = store.start_get_many(["c/a", "c/b"], 0.5)
    assert time.monotonic() - started < 0.5
    with pytest.raises(StoreError, match="read failed"):
        pending()
    assert 0.4 < time.monotonic() - started < 4.0


def test_not_found_is_an_absent_document_unless_it_is_about_the_database(
    store_at: Callable[[str, float, float], FirestoreStore],
) -> None:
    server, host = _grpc_server(grpc.StatusCode.NOT_FOUND, "Document (c/d) not found.")
    try:
        store = store_at(host, 2.0, 0.3)
        assert store.get_many(["c/d", "c/e"]) == {"c/d": None, "c/e": None}
        assert store.start_get_many(["c/d"], 1.0)() == {"c/d": None}
        # Only a read takes NOT_FOUND as absence: a write refused so is an error.
        _, err = _timed(lambda: store.commit(WRITE))
        assert getattr(err, "maybe_applied", False) is False
    finally:
        server.stop(None)
    server, host = _grpc_server(
        grpc.StatusCode.NOT_FOUND, "The database (nope) does not exist for project demo-test"
    )
    try:
        store = store_at(host, 2.0, 0.3)
        _, err = _timed(lambda: store.get_many(["c/d"]))
        assert "read failed: NotFound" in str(err)
        with pytest.raises(StoreError, match="read failed"):
            store.start_get_many(["c/d", "c/e"], 1.0)()
    finally:
        server.stop(None)


def test_a_batch_that_increments_is_not_sent_again_after_it_may_have_landed(
    store_at: Callable[[str, float, float], FirestoreStore],
) -> None:
    # An UNAVAILABLE after a Commit may come after it applied: a record batch (the raw shard's
    # increments) sent again would count its call twice. A batch of plain sets may be retried.
    from stores.base import Inc

    server, host, asked = failing_firestore(lambda _m: (grpc.StatusCode.UNAVAILABLE, "unavailable"))
    try:
        store = store_at(host, 2.0, 0.5)
        _, err = _timed(lambda: store.commit([Write("c/d", {"n": Inc(1)}), Write("c/e", {})]))
        assert isinstance(err, StoreUnanswered) and asked == ["Commit"]
        asked.clear()
        _timed(lambda: store.commit(WRITE))
        assert len(asked) > 1  # idempotent: retried within the store's retry time
    finally:
        server.stop(None)


def _refuse(code: grpc.StatusCode, _method: str) -> tuple[grpc.StatusCode, str]:
    return code, "refused"


def test_a_started_increment_is_retried_as_an_increment_is(
    store_at: Callable[[str, float, float], FirestoreStore], black_hole: str
) -> None:
    # The rate limit's increment is sent before the call's other work and collected after it:
    # an UNAVAILABLE (it may have applied) is not sent again, an ABORTED (it did not) is, and a
    # store that never answers is given up at the store's deadline, counted from the send.
    for code, retried in ((grpc.StatusCode.UNAVAILABLE, False), (grpc.StatusCode.ABORTED, True)):
        server, host, asked = failing_firestore(functools.partial(_refuse, code))
        try:
            store = store_at(host, 2.0, 0.5)
            collect = store.start_increment("c/d", "count", 1, {})
            _, err = _timed(collect)
            assert "increment failed" in str(err)
            assert asked[0] == "Commit" and (len(asked) > 1) is retried, (code, asked)
        finally:
            server.stop(None)
    store = store_at(black_hole, 1.0, 0.5)
    collect = store.start_increment("c/d", "count", 1, {})
    time.sleep(0.5)
    took, err = _timed(collect)
    assert took < 1.5, took
    assert isinstance(err, StoreUnanswered)


@pytest.mark.parametrize("op", ["compare_and_set", "replace_if_unchanged"])
def test_a_conditional_write_gives_up_at_the_stores_deadline(
    black_hole: str, store_at: Callable[[str, float, float], FirestoreStore], op: str
) -> None:
    # Both ran a client transaction with its own 60 s timeout and retries: an idempotency claim
    # against a frozen store outlived the function instead of answering unavailable.
    store = store_at(black_hole, 1.0, 0.5)
    if op == "compare_and_set":
        took, err = _timed(lambda: store.compare_and_set("c/d", 0, {"version": 1}, []))
    else:
        took, err = _timed(lambda: store.replace_if_unchanged("c/d", None, {"a": 1}, []))
    assert took < 4.0, took
    assert isinstance(err, StoreError)

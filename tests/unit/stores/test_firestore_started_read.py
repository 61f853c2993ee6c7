"""Issue 11: ``FirestoreStore.start_get_many`` sends its read without waiting for the answer,
and collecting it is bounded by the deadline it was given: against a loopback server that
accepts connections and never answers (no emulator needed), the send returns at once and the
collection fails with ``StoreError`` after about the deadline, not the store's own 5 s."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from stores.errors import StoreError
from stores.firestore import FirestoreStore, make_client


@pytest.fixture
def silent_server() -> Iterator[str]:
    """host:port of a server that accepts TCP connections and never sends a byte."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    host, port = server.getsockname()
    yield f"{host}:{port}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


def test_the_read_is_sent_without_waiting_and_its_collection_keeps_the_deadline(
    silent_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", silent_server)
    store = FirestoreStore(make_client("demo-started-read"), deadline_s=5.0)
    started = time.monotonic()
    pending = store.start_get_many(["c/a", "c/b"], 0.5)
    sent_in = time.monotonic() - started
    assert sent_in < 0.5  # nothing has answered, and the caller already has its function
    with pytest.raises(StoreError, match="read failed"):
        pending()
    waited = time.monotonic() - started
    assert 0.4 < waited < 4.0  # the 0.5 s given, not the store's 5 s (nor its retries)

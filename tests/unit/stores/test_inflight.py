"""``stores.inflight``: a unary call sent now and collected later by the same thread, against a
real gRPC server on loopback; and the store's reads over it (a retried first attempt, the
blocking fallback where grpcio's internals are not as expected)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest

from stores import inflight
from stores.errors import StoreError
from stores.firestore import FirestoreStore, make_client
from tests.support.failing_firestore import failing_firestore

SERVICE = "test.Echo"


class Echo:
    """``Echo/Say`` answers its request (bytes) reversed after ``delay`` seconds; ``Echo/Fail``
    fails with the status named by its request. It notes when each request arrived and which
    calls ended cancelled."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.arrived: list[float] = []
        self.cancelled = 0
        self.lock = threading.Lock()

    def say(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        with self.lock:
            self.arrived.append(time.monotonic())
        end = time.monotonic() + self.delay
        while time.monotonic() < end:
            if not context.is_active():
                with self.lock:
                    self.cancelled += 1
                return b""
            time.sleep(0.005)
        return request[::-1]

    def fail(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(getattr(grpc.StatusCode, request.decode()), "failed as asked")
        return b""  # not reached: abort raises


@pytest.fixture
def echo() -> Iterator[tuple[Echo, grpc.Channel]]:
    service = Echo()
    handlers = {
        "Say": grpc.unary_unary_rpc_method_handler(service.say),
        "Fail": grpc.unary_unary_rpc_method_handler(service.fail),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield service, channel
    finally:
        channel.close()
        server.stop(None)


def _method(channel: grpc.Channel, name: str) -> Any:
    return channel.unary_unary(f"/{SERVICE}/{name}")


@pytest.fixture(params=["in flight", "deferred"])
def starter(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways ``start`` can go: the two must answer and fail alike."""
    if request.param == "deferred":
        monkeypatch.setattr(inflight, "supported", lambda _m: False)
    return str(request.param)


def test_grpcio_here_is_the_one_inflight_knows(echo: tuple[Echo, grpc.Channel]) -> None:
    _, channel = echo
    assert inflight.supported(_method(channel, "Say"))
    assert not inflight.supported(lambda *a, **k: None)
    assert isinstance(
        inflight.start(lambda r, **k: r, b"x", timeout=1.0, metadata=()), inflight.Deferred
    )


def test_a_call_in_flight_is_on_the_wire_before_it_is_collected(
    echo: tuple[Echo, grpc.Channel],
) -> None:
    service, channel = echo
    service.delay = 0.2
    started = time.monotonic()
    pending = inflight.start(_method(channel, "Say"), b"abc", timeout=5.0, metadata=())
    assert isinstance(pending, inflight.InFlight)
    assert time.monotonic() - started < 0.1  # sending did not wait for the answer
    time.sleep(0.3)  # the thread does other work; the server answers meanwhile
    assert service.arrived and service.arrived[0] - started < 0.2
    collected = time.monotonic()
    assert pending.result() == b"cba"
    assert time.monotonic() - collected < 0.1  # the answer was waiting in its queue
    assert pending.result() == b"cba"  # collected once; asked again, the same answer


def test_two_calls_in_flight_overlap(echo: tuple[Echo, grpc.Channel], starter: str) -> None:
    service, channel = echo
    service.delay = 0.3
    started = time.monotonic()
    first = inflight.start(_method(channel, "Say"), b"ab", timeout=5.0, metadata=())
    second = inflight.start(_method(channel, "Say"), b"cd", timeout=5.0, metadata=())
    assert (first.result(), second.result()) == (b"ba", b"dc")
    took = time.monotonic() - started
    if starter == "in flight":
        assert took < 0.55, took  # both on the wire at once: one delay, not two
    else:
        assert took >= 0.6, took  # the fallback sends each when it is collected


@pytest.mark.parametrize("code", ["NOT_FOUND", "UNAVAILABLE", "INVALID_ARGUMENT"])
def test_a_failed_call_raises_what_the_blocking_call_raises(
    echo: tuple[Echo, grpc.Channel], starter: str, code: str
) -> None:
    _, channel = echo
    fail = _method(channel, "Fail")
    with pytest.raises(grpc.RpcError) as blocking:
        fail(code.encode(), timeout=2.0)
    pending = inflight.start(fail, code.encode(), timeout=2.0, metadata=())
    with pytest.raises(grpc.RpcError) as started:
        pending.result()
    assert started.value.code() is blocking.value.code() is getattr(grpc.StatusCode, code)
    assert started.value.details() == blocking.value.details() == "failed as asked"


def test_the_deadline_counts_from_the_start(echo: tuple[Echo, grpc.Channel], starter: str) -> None:
    service, channel = echo
    service.delay = 2.0
    pending = inflight.start(_method(channel, "Say"), b"x", timeout=0.3, metadata=())
    time.sleep(0.2)
    collected = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        pending.result()
    assert err.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - collected < 0.3


def test_a_call_never_collected_is_cancelled_when_dropped(
    echo: tuple[Echo, grpc.Channel],
) -> None:
    service, channel = echo
    service.delay = 5.0
    say = _method(channel, "Say")
    pending = [inflight.start(say, b"x", timeout=10.0, metadata=()) for _ in range(20)]
    deadline = time.monotonic() + 2.0
    while len(service.arrived) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    dropped = time.monotonic()
    del pending
    assert time.monotonic() - dropped < 1.0  # dropping cancels; it does not wait for answers
    while service.cancelled < 20 and time.monotonic() < deadline + 2.0:
        time.sleep(0.01)
    assert service.cancelled == 20
    service.delay = 0.0
    assert say(b"ok", timeout=2.0) == b"ko"  # the channel is still fine


# -- the store's reads over it --------------------------------------------------------------


def _firestore_server(answers: list[grpc.StatusCode]) -> tuple[grpc.Server, str, list[str]]:
    """A Firestore that fails with each of ``answers`` in turn, then answers NOT_FOUND (an
    absent document); the methods it was asked."""

    def answer(_method: str) -> tuple[grpc.StatusCode, str]:
        if answers:
            return answers.pop(0), "no"
        return grpc.StatusCode.NOT_FOUND, "Document not found."

    return failing_firestore(answer)


@pytest.fixture
def store_against(
    monkeypatch: pytest.MonkeyPatch, starter: str
) -> Iterator[Callable[[list[grpc.StatusCode]], tuple[FirestoreStore, list[str]]]]:
    servers: list[grpc.Server] = []

    def make(answers: list[grpc.StatusCode]) -> tuple[FirestoreStore, list[str]]:
        server, host, asked = _firestore_server(answers)
        servers.append(server)
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", host)
        return FirestoreStore(make_client("demo-inflight"), deadline_s=3.0, retry_s=2.0), asked

    yield make
    for server in servers:
        server.stop(None)


def test_get_many_sends_a_failed_first_attempt_again(
    store_against: Callable[[list[grpc.StatusCode]], tuple[FirestoreStore, list[str]]],
) -> None:
    store, asked = store_against([grpc.StatusCode.UNAVAILABLE])
    assert store.get_many(["c/a", "c/b"]) == {"c/a": None, "c/b": None}
    assert len(asked) == 3  # two reads, one of them sent twice


def test_a_started_read_is_not_retried(
    store_against: Callable[[list[grpc.StatusCode]], tuple[FirestoreStore, list[str]]],
) -> None:
    store, asked = store_against([grpc.StatusCode.UNAVAILABLE])
    with pytest.raises(StoreError, match="read failed: ServiceUnavailable"):
        store.start_get_many(["c/a"], 1.0)()
    assert len(asked) == 1

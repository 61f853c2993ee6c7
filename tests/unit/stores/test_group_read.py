"""``stores.group_read``: reads that wait go together in one BatchGetDocuments, each member gets
its own documents (absent ones None), a quiet store reads as before, and one member's refused
read never fails another's. The wire here is a fake: a read answers each name with a document
made from it, except names starting with ``absent``."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest

from stores.group_read import MAX_DOCUMENTS, GroupRead


class Refused(grpc.RpcError):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code.name)
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


class Wire:
    """Reads sent (``("alone" | "together", names)``), answered when told (or at once with
    ``auto``); ``refuse(kind, names)`` gives the error a read meets, if any."""

    def __init__(
        self,
        auto: bool = False,
        refuse: Callable[[str, Sequence[str]], grpc.StatusCode | None] = lambda k, n: None,
        delay: float = 0.0,
        held: frozenset[str] = frozenset(),
    ) -> None:
        self.delay = delay
        self.held = held  # a read of any of these waits for ``answer`` even with ``auto``
        self.sent: list[tuple[str, tuple[str, ...]]] = []
        self.auto = auto
        self.refuse = refuse
        self.gates: list[threading.Event] = []
        self.lock = threading.Lock()

    def alone(self, names: Sequence[str], timeout: float) -> Any:
        return self._send("alone", names)

    def together(self, names: Sequence[str], timeout: float) -> Any:
        return self._send("together", names)

    def _send(self, kind: str, names: Sequence[str]) -> Any:
        gate = threading.Event()
        if self.auto and self.held.isdisjoint(names):
            gate.set()
        with self.lock:
            self.sent.append((kind, tuple(names)))
            self.gates.append(gate)
        wire = self

        class Pending:
            def result(self) -> Any:
                assert gate.wait(5), "never answered"
                time.sleep(wire.delay)  # on the wire a while: others' reads come meanwhile
                code = wire.refuse(kind, names)
                if code is not None:
                    raise Refused(code)
                return {n: None if n.startswith("absent") else f"doc:{n}" for n in names}

        return Pending()

    def answer(self, i: int) -> None:
        self.gates[i].set()


def group(wire: Wire, in_flight: int = 1) -> GroupRead:
    return GroupRead(wire.alone, wire.together, in_flight)


def soon() -> float:
    return time.monotonic() + 5.0


def test_a_quiet_store_sends_each_read_at_once_and_alone() -> None:
    wire = Wire(auto=True)
    g = group(wire)
    assert g.start(["a", "absent1"], soon()).result() == {"a": "doc:a", "absent1": None}
    assert g.start(["b"], soon()).result() == {"b": "doc:b"}
    assert wire.sent == [("alone", ("a", "absent1")), ("alone", ("b",))]
    assert g.sent == g.members == 2


def test_reads_that_wait_go_together_and_each_gets_its_own_documents() -> None:
    wire = Wire()
    g = group(wire)
    first = g.start(["a"], soon())  # in the slot, not answered yet
    second = g.start(["b", "absent2"], soon())
    third = g.start(["c", "b"], soon())
    assert wire.sent == [("alone", ("a",))]  # the others wait for the slot
    wire.answer(0)
    got: dict[str, Any] = {}
    t = threading.Thread(target=lambda: got.update(second=second.result()))
    t.start()
    while len(wire.sent) < 2:  # second's caller collected the slot and sent the batch
        time.sleep(0.001)
    assert wire.sent[1] == ("together", ("absent2", "b", "c"))
    wire.answer(1)
    t.join(5)
    assert got["second"] == {"b": "doc:b", "absent2": None}
    assert third.result() == {"c": "doc:c", "b": "doc:b"}
    assert first.result() == {"a": "doc:a"}
    assert (g.sent, g.members) == (2, 3)


def test_a_batch_stays_within_its_most_documents() -> None:
    wire = Wire()
    g = group(wire)
    g.start(["slot"], soon())
    half = MAX_DOCUMENTS // 2 + 1
    one = g.start([f"x{i}" for i in range(half)], soon())
    two = g.start([f"y{i}" for i in range(half)], soon())  # would pass the most: next batch
    for gate in range(3):
        threading.Timer(0.05 * (gate + 1), lambda i=gate: _answer_when_sent(wire, i)).start()
    assert len(two.result()) == half and len(one.result()) == half
    assert [kind for kind, _ in wire.sent] == ["alone", "alone", "alone"]
    assert all(len(names) <= MAX_DOCUMENTS for _, names in wire.sent)


def _answer_when_sent(wire: Wire, i: int) -> None:
    deadline = time.monotonic() + 5
    while len(wire.gates) <= i and time.monotonic() < deadline:
        time.sleep(0.001)
    wire.answer(i)


@pytest.mark.parametrize("code", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND])
def test_a_batch_refused_whole_is_read_again_member_by_member(code: grpc.StatusCode) -> None:
    def refuse(kind: str, names: Sequence[str]) -> grpc.StatusCode | None:
        return code if "bad" in names else None

    wire = Wire(auto=True, refuse=refuse, held=frozenset({"slot"}))
    g = group(wire)
    slot = g.start(["slot"], soon())  # not answered yet: the next reads wait
    good = g.start(["good"], soon())
    bad = g.start(["bad"], soon())
    wire.answer(0)
    assert good.result() == {"good": "doc:good"}
    with pytest.raises(Refused) as refused:
        bad.result()
    assert refused.value.code() is code
    assert slot.result() == {"slot": "doc:slot"}
    assert wire.sent == [
        ("alone", ("slot",)),
        ("together", ("bad", "good")),
        ("alone", ("good",)),
        ("alone", ("bad",)),
    ]


def test_an_unavailable_store_reaches_every_member_as_is() -> None:
    wire = Wire(auto=True, refuse=lambda kind, n: grpc.StatusCode.UNAVAILABLE)
    g = group(wire)
    reads = [g.start([f"d{i}"], soon()) for i in range(3)]
    for r in reads:
        with pytest.raises(Refused) as refused:
            r.result()
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    assert len(wire.sent) == 2  # the first alone, the other two together; none sent again


def test_a_member_collects_the_read_ahead_when_its_owner_never_does() -> None:
    wire = Wire(auto=True)
    g = group(wire)
    g.start(["abandoned"], soon())  # its caller never collects it (a call that failed)
    later = g.start(["later"], soon())
    assert later.result() == {"later": "doc:later"}
    assert wire.sent == [("alone", ("abandoned",)), ("alone", ("later",))]


@pytest.mark.parametrize("documents", [1, 3])
def test_many_threads_each_get_their_own_documents_in_fewer_reads(documents: int) -> None:
    wire = Wire(auto=True, delay=0.002)
    g = group(wire)
    errors: list[BaseException] = []

    def calls(t: int) -> None:
        rng = random.Random(t)
        for i in range(40):
            names = [f"d{t}-{i}-{k}" for k in range(documents)]
            if rng.random() < 0.3:
                names.append(f"absent{t}-{i}")
            if rng.random() < 0.3:
                names.append("shared")
            try:
                got = g.start(names, soon()).result()
                want = {n: None if n.startswith("absent") else f"doc:{n}" for n in names}
                assert got == want
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            time.sleep(rng.random() / 1000)

    threads = [threading.Thread(target=calls, args=(t,)) for t in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert not errors, errors[:3]
    assert g.members == 16 * 40 and g.sent == len(wire.sent) < g.members
    assert {kind for kind, _ in wire.sent} == {"alone", "together"}

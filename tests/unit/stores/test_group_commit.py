"""``stores.group_commit``: commits that wait go together in one Commit, each member gets its
own results, a document is never written twice in one Commit, and one member's refused write
never fails another's. The wire here is a fake that answers raw ``CommitRequest``s with raw
``CommitResponse``s (each write's transform result names the document it wrote)."""

from __future__ import annotations

import gc
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
from google.cloud.firestore_v1.types import firestore as firestore_types

from stores.group_commit import MAX_WRITES, MOST_ON_WIRE, GroupCommit, _Batch, _Member

REQUEST = firestore_types.CommitRequest.pb()
RESPONSE = firestore_types.CommitResponse.pb()
DB = "projects/p/databases/(default)"


class Refused(grpc.RpcError):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code.name)
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


def request(*docs: str) -> Any:
    out = REQUEST(database=DB)
    for d in docs:
        w = out.writes.add()
        w.update.name = f"{DB}/documents/{d}"
        t = w.update_transforms.add()
        t.field_path = "n"
        t.increment.integer_value = 1
    return out


def names(req: Any) -> list[str]:
    return [w.update.name.rsplit("/documents/", 1)[1] for w in req.writes]


class Wire:
    """Sent requests, answered when told (or at once with ``auto``); ``refuse(req)`` gives the
    error a request meets, if any."""

    def __init__(
        self, auto: bool = False, refuse: Callable[[Any], grpc.StatusCode | None] = lambda r: None
    ) -> None:
        self.sent: list[Any] = []
        self.auto = auto
        self.refuse = refuse
        self.gates: list[threading.Event] = []
        self.collected: list[int] = []

    def send(self, req: Any, timeout: float) -> Any:
        self.sent.append(req)
        gate = threading.Event()
        if self.auto:
            gate.set()
        self.gates.append(gate)
        wire, index = self, len(self.sent) - 1

        class Pending:
            def result(self) -> Any:
                assert gate.wait(5), "never answered"
                wire.collected.append(index)
                code = wire.refuse(req)
                if code is not None:
                    raise Refused(code)
                answer = RESPONSE()
                for n in names(req):
                    answer.write_results.add().transform_results.add().string_value = n
                return answer

        return Pending()

    def answer_all(self) -> None:
        for g in self.gates:
            g.set()


def group(wire: Wire, in_flight: int = 1) -> GroupCommit:
    return GroupCommit(wire.send, lambda: REQUEST(database=DB), in_flight)


def results(answer: Any) -> list[str]:
    return [r.transform_results[0].string_value for r in answer.write_results]


def later() -> float:
    return time.monotonic() + 5


def test_a_quiet_store_sends_each_commit_at_once_and_unchanged() -> None:
    wire = Wire(auto=True)
    g = group(wire)
    req = request("c/a", "c/b")
    ticket = g.start(req, later())
    assert wire.sent == [req] and wire.sent[0] is req  # on the wire before anyone asks
    assert results(ticket.result()) == ["c/a", "c/b"]
    assert results(g.start(request("c/a"), later()).result()) == ["c/a"]
    assert len(wire.sent) == 2 and g.commits == g.members == 2


def test_commits_that_wait_go_together_and_each_gets_its_own_results() -> None:
    wire = Wire(auto=True)
    g = group(wire)
    first = g.start(request("c/a"), later())
    waiting = [g.start(request(f"c/{x}1", f"c/{x}2"), later()) for x in "xyz"]
    assert len(wire.sent) == 1  # the three wait for the first
    # The second asks first: it collects the Commit ahead of it, which sends the three as one.
    assert results(waiting[1].result()) == ["c/y1", "c/y2"]
    assert [names(r) for r in wire.sent] == [
        ["c/a"],
        ["c/x1", "c/x2", "c/y1", "c/y2", "c/z1", "c/z2"],
    ]
    assert results(waiting[2].result()) == ["c/z1", "c/z2"]
    assert results(waiting[0].result()) == ["c/x1", "c/x2"]
    assert results(first.result()) == ["c/a"]
    assert (g.commits, g.members) == (2, 4)


def test_a_document_is_never_written_twice_in_one_commit() -> None:
    wire = Wire(auto=True)
    g = group(wire)
    tickets = [g.start(request(d), later()) for d in ("c/a", "c/b", "c/b", "c/d", "c/b")]
    # c/a in the slot; c/b waits; the second c/b cannot join it and goes alone at once; c/d
    # joins the waiting batch; the third c/b goes alone too.
    assert [names(r) for r in wire.sent] == [["c/a"], ["c/b"], ["c/b"]]
    for t in tickets:
        t.result()
    batches = [names(r) for r in wire.sent]
    assert batches == [["c/a"], ["c/b"], ["c/b"], ["c/b", "c/d"]]
    for b in batches:
        assert len(b) == len(set(b))


def test_one_users_simultaneous_commits_are_not_made_to_go_one_at_a_time() -> None:
    """Every call of one user writes the same rate-limit document: none can go together, so
    they go alone beside the slot, up to MOST_ON_WIRE Commits on the wire."""
    wire = Wire()
    g = group(wire)
    tickets = [g.start(request("c/limit"), later()) for _ in range(MOST_ON_WIRE + 2)]
    # The slot's, then (one waiting for the slot) alone until MOST_ON_WIRE are on the wire;
    # the last waits behind.
    assert len(wire.sent) == MOST_ON_WIRE
    done: list[int] = []

    def collect(i: int) -> None:
        tickets[i].result()
        done.append(i)

    threads = [threading.Thread(target=collect, args=(i,)) for i in range(len(tickets))]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 5
    while len(done) < len(tickets) and time.monotonic() < deadline:
        wire.answer_all()
        time.sleep(0.005)
    for th in threads:
        th.join(5)
    assert sorted(done) == list(range(len(tickets)))
    assert len(wire.sent) == len(tickets) and all(len(r.writes) == 1 for r in wire.sent)


def test_the_waiting_batch_goes_when_the_slot_is_answered_whatever_else_is_on_the_wire() -> None:
    wire = Wire()
    g = group(wire)
    slot = g.start(request("c/a"), later())
    waiting = g.start(request("c/b"), later())
    beside = g.start(request("c/b"), later())  # cannot join: goes alone, beside the slot
    assert [names(r) for r in wire.sent] == [["c/a"], ["c/b"]]
    wire.gates[0].set()
    slot.result()  # the slot answered: the waiting batch goes now, the other still out
    assert [names(r) for r in wire.sent] == [["c/a"], ["c/b"], ["c/b"]]
    wire.answer_all()
    assert results(waiting.result()) == ["c/b"] and results(beside.result()) == ["c/b"]


def test_a_batch_stays_within_firestores_limit_on_writes() -> None:
    wire = Wire(auto=True)
    g = group(wire)
    big = MAX_WRITES // 4  # each write carries a transform: 2 writes' worth each
    g.start(request("c/first"), later())
    tickets = [g.start(request(*(f"c/{i}-{j}" for j in range(big))), later()) for i in range(3)]
    for t in tickets:
        t.result()
    sizes = [len(r.writes) + sum(len(w.update_transforms) for w in r.writes) for r in wire.sent]
    # The third could not join the two waiting (500 writes with them): it went alone at once.
    assert sizes == [2, 2 * big, 4 * big] and max(sizes) <= MAX_WRITES


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ABORTED, grpc.StatusCode.NOT_FOUND]
)
def test_a_batch_refused_whole_is_sent_again_member_by_member(code: grpc.StatusCode) -> None:
    def refuse(req: Any) -> grpc.StatusCode | None:
        return code if "c/bad" in names(req) else None

    wire = Wire(auto=True, refuse=refuse)
    g = group(wire)
    g.start(request("c/first"), later())  # on the wire: the three wait and go together
    tickets = {d: g.start(request(d), later()) for d in ("c/one", "c/bad", "c/two")}
    assert results(tickets["c/one"].result()) == ["c/one"]
    assert results(tickets["c/two"].result()) == ["c/two"]
    with pytest.raises(Refused) as err:
        tickets["c/bad"].result()
    assert err.value.code() is code
    with pytest.raises(Refused):  # asked again: the same error, nothing sent again
        tickets["c/bad"].result()
    assert [names(r) for r in wire.sent] == [
        ["c/first"],
        ["c/one", "c/bad", "c/two"],
        ["c/one"],
        ["c/two"],
        ["c/bad"],
    ]


@pytest.mark.parametrize(
    "code",
    [grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL],
)
def test_an_error_after_which_a_batch_may_have_applied_reaches_every_member_as_is(
    code: grpc.StatusCode,
) -> None:
    wire = Wire(auto=True, refuse=lambda req: code if len(req.writes) > 1 else None)
    g = group(wire)
    g.start(request("c/first"), later())
    tickets = [g.start(request(d), later()) for d in ("c/one", "c/two")]
    for t in tickets:
        with pytest.raises(Refused) as err:
            t.result()
        assert err.value.code() is code
    assert len(wire.sent) == 2  # nothing sent again: it may have landed


def test_a_member_collects_the_commit_ahead_when_its_owner_never_does() -> None:
    wire = Wire()
    g = group(wire)
    g.start(request("c/owner-gone"), later())  # never collected by its caller
    mine = g.start(request("c/mine"), later())
    got: list[list[str]] = []
    t = threading.Thread(target=lambda: got.append(results(mine.result())))
    t.start()
    time.sleep(0.05)
    assert len(wire.sent) == 1 and t.is_alive()  # waits for the Commit ahead
    wire.answer_all()
    deadline = time.monotonic() + 5
    while len(wire.sent) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    wire.answer_all()
    t.join(5)
    assert got == [["c/mine"]] and wire.collected[0] == 0


def test_a_batch_waits_at_most_for_the_earliest_deadline_of_its_members() -> None:
    timeouts: list[float] = []
    wire = Wire(auto=True)

    def send(req: Any, timeout: float) -> Any:
        timeouts.append(timeout)
        return wire.send(req, timeout)

    g = GroupCommit(send, lambda: REQUEST(database=DB))
    g.start(request("c/first"), time.monotonic() + 5)
    a = g.start(request("c/a"), time.monotonic() + 5)
    g.start(request("c/b"), time.monotonic() + 0.5)
    a.result()
    assert timeouts[0] > 4 and 0 < timeouts[1] <= 0.5


def test_a_request_that_cannot_be_sent_fails_alone() -> None:
    wire = Wire(auto=True)

    def send(req: Any, timeout: float) -> Any:
        if len(req.writes) > 1 or "c/bad" in names(req):
            raise ValueError("cannot be serialised")
        return wire.send(req, timeout)

    g = GroupCommit(send, lambda: REQUEST(database=DB))
    first = g.start(request("c/first"), later())
    good, bad = g.start(request("c/good"), later()), g.start(request("c/bad"), later())
    assert results(first.result()) == ["c/first"]
    assert results(good.result()) == ["c/good"]
    with pytest.raises(ValueError, match="serialised"):
        bad.result()


@pytest.mark.parametrize("documents", [300, 10])
def test_many_threads_each_get_their_own_results_in_fewer_commits(documents: int) -> None:
    """16 threads of commits of 1-4 documents out of ``documents``: out of 300 they mostly go
    together (about a fifth as many Commits as members, measured); out of 10 they mostly
    cannot, and go alone beside the slot."""
    sent: list[Any] = []
    lock = threading.Lock()

    def send(req: Any, timeout: float) -> Any:
        with lock:
            sent.append(req)
        ready = time.monotonic() + 0.002  # a store that takes 2 ms to answer

        class Pending:
            def result(self) -> Any:
                time.sleep(max(0.0, ready - time.monotonic()))
                answer = RESPONSE()
                for n in names(req):
                    answer.write_results.add().transform_results.add().string_value = n
                return answer

        return Pending()

    g = GroupCommit(send, lambda: REQUEST(database=DB))
    errors: list[str] = []

    def caller(k: int) -> None:
        rnd = random.Random(k)
        for i in range(40):
            docs = sorted({f"c/{rnd.randrange(documents)}" for _ in range(rnd.randint(1, 4))})
            ticket = g.start(request(*docs), later())
            if rnd.random() < 0.3:
                time.sleep(0.001)  # collected a little later, as a started increment is
            if results(ticket.result()) != docs:
                errors.append(f"{k}/{i}")

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and g.members == 16 * 40 and g.commits == len(sent)
    if documents == 300:
        assert g.commits < g.members / 2  # went together
    for req in sent:
        assert len(names(req)) == len(set(names(req)))


def test_in_flight_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        GroupCommit(Wire().send, lambda: REQUEST(database=DB), 0)


class _Answered:
    """A Commit answered at once (no class made per call: a class is itself a cycle)."""

    def __init__(self, req: Any) -> None:
        self.req = req

    def result(self) -> Any:
        answer = RESPONSE()
        for n in names(self.req):
            answer.write_results.add().transform_results.add().string_value = n
        return answer


def test_a_finished_commit_leaves_nothing_for_the_cyclic_collector() -> None:
    """Once answered and dropped, a commit's member, batch, request and answer are freed by
    reference counting: a cycle would keep them (and the gRPC call's state) until Python's
    cyclic collector ran, with the GIL held (docs/architecture.md, "Garbage")."""
    g = GroupCommit(lambda req, timeout: _Answered(req), lambda: REQUEST(database=DB))
    gc.collect()
    gc.disable()
    try:
        for i in range(50):
            assert results(g.start(request(f"d{i}"), later()).result()) == [f"d{i}"]
        # Counted by type, so that garbage other threads of this process make does not count.
        kept = [o for o in gc.get_objects() if type(o) in (_Member, _Batch, _Answered)]
        assert kept == []
    finally:
        gc.enable()

"""Commits of concurrent calls in one instance sent together as one Commit (group commit).

Why: a Commit's cost is mostly per call, not per write. On the Firestore emulator (measured
with 8 threads, docs/benchmarks/load-overview.md) one write per Commit cost it 1.1-2.8 ms of
CPU and the client 0.45-0.54 ms, against 0.22-0.61 and 0.07-0.15 ms per write in Commits of
6 to 8 writes. Every enrichment sends two Commits (its rate-limit increment and its records), so
a burst that keeps an instance's request threads busy spends most of the store's work on
the calls themselves.

How: a store has ``in_flight`` batching slots (1). A commit that finds a slot free and nothing
waiting goes out at once, alone, as the same request it would have been (a quiet instance waits
for nothing). Otherwise it joins the batch waiting for a slot. One that cannot join it, because
that batch already writes one of its documents (a document is never written twice in one
Commit: Firestore's BatchWrite refuses that, and Google's own BulkWriter splits such writes
the same way) or would pass Firestore's limits, goes out alone at once if fewer than
``MOST_ON_WIRE`` Commits are on the wire (it could not have gone with that batch anyway, and
one user's simultaneous calls, which all write that user's rate-limit document, are not made
to go one at a time), or else starts the next batch. A waiting batch is sent as soon as the
Commit in the slot is answered, by whichever thread collects that answer first; a member
collecting its own answer collects the one in the slot if no one has. Each member gets its own
writes' results.

Failures: a Commit applies all its writes or none. A batch refused with nothing applied (a
definite error, such as ``INVALID_ARGUMENT`` for one member's document, or ``ABORTED``) is
sent again member by member, each alone: one caller's bad document never fails another's. An
error after which the batch may have applied (``DEADLINE_EXCEEDED``, ``UNAVAILABLE`` and the
like) reaches every member as its own Commit's would have, and the store's retry policy for
that member decides what follows, as before.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import grpc  # type: ignore[import-untyped]

from stores.inflight import Pending

MOST_ON_WIRE = 4
"""Commits of one store on the wire at once, the batching slots' included."""
MAX_WRITES = 500
"""Firestore's limit on the writes (field transforms counted as writes) of one Commit."""
MAX_BYTES = 8 * 1024 * 1024
"""A batch's request stays under this (Firestore's request limit is 10 MiB); a member that is
larger alone is sent alone."""
NOTHING_APPLIED = frozenset(
    {
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)
"""Errors of a Commit that mean none of its writes was applied."""

Send = Callable[[Any, float], Pending]
"""Sends a raw ``CommitRequest`` with a timeout (seconds); its answer collected later."""


def _written(write: Any) -> str:
    return str(write.update.name if write.HasField("update") else write.delete)


class _Member:
    # No reference to its batch (the ticket holds it): a member and its batch pointing at
    # each other would keep every Commit's request, answer and gRPC call alive until the
    # cyclic garbage collector ran (two cycles a call, the most of its collections).
    __slots__ = ("deadline", "paths", "request", "size", "start", "writes")

    def __init__(self, request: Any, deadline: float) -> None:
        self.request = request
        self.deadline = deadline
        self.start = 0
        self.paths: frozenset[str] = frozenset()
        self.writes = self.size = 0

    def measure(self) -> _Member:
        """Its documents, writes and bytes: only a member that waits needs them."""
        if self.paths:  # measured already
            return self
        writes = self.request.writes
        self.paths = frozenset(_written(w) for w in writes)
        self.writes = len(writes) + sum(len(w.update_transforms) for w in writes)
        self.size = self.request.ByteSize()
        return self


class _Batch:
    __slots__ = (
        "answer",
        "done",
        "error",
        "lock",
        "members",
        "paths",
        "pending",
        "size",
        "slot",
        "unsent",
        "writes",
    )

    def __init__(self) -> None:
        self.members: list[_Member] = []
        self.paths: set[str] = set()
        self.writes = 0
        self.size = 0
        self.pending: Pending | None = None
        self.lock = threading.Lock()
        self.done = False
        self.answer: Any = None
        self.error: BaseException | None = None
        self.unsent = False  # failed before it was sent: nothing applied
        self.slot = False  # sent in a batching slot (not alone beside one)

    def fits(self, m: _Member) -> bool:
        return (
            self.paths.isdisjoint(m.paths)
            and self.writes + m.writes <= MAX_WRITES
            and self.size + m.size <= MAX_BYTES
        )

    def add(self, m: _Member) -> _Batch:
        self.members.append(m)
        self.paths |= m.paths
        self.writes += m.writes
        self.size += m.size
        return self


class GroupCommit:
    """One store's Commits: ``in_flight`` batching slots, the rest sent in batches."""

    def __init__(self, send: Send, new_request: Callable[[], Any], in_flight: int = 1) -> None:
        if in_flight < 1:
            raise ValueError("in_flight must be at least 1")
        self._send = send
        self._new_request = new_request
        self._limit = in_flight
        self._lock = threading.Lock()
        self._wire: list[_Batch] = []
        self._waiting: deque[_Batch] = deque()
        self.commits = 0
        """Commits sent (batches, whatever their size; a member sent again alone not counted)."""
        self.members = 0
        """Commits asked for (``start`` calls)."""

    def start(self, request: Any, deadline: float) -> Pending:
        """``request`` (a raw ``CommitRequest``) sent now or with the next batch; the returned
        ``result()`` answers its own ``CommitResponse`` or raises the ``grpc.RpcError`` its own
        Commit would have. ``deadline`` is a ``time.monotonic()`` instant."""
        m = _Member(request, deadline)
        with self._lock:
            self.members += 1
            tail = self._waiting[-1] if self._waiting else None
            if tail is None and self._slot_free():
                b = _Batch().add(m)
                self._dispatch(b, slot=True)
            elif tail is not None and tail.fits(m.measure()):
                b = tail.add(m)
            elif tail is not None and len(self._wire) < MOST_ON_WIRE:
                b = _Batch().add(m)
                self._dispatch(b, slot=False)
            else:
                b = _Batch().add(m.measure())
                self._waiting.append(b)
        return _Ticket(self, m, b)

    def _slot_free(self) -> bool:
        """Whether fewer batches than the slots are on the wire in one (the lock held)."""
        return sum(w.slot for w in self._wire) < self._limit

    def _dispatch(self, b: _Batch, *, slot: bool) -> None:
        """Send ``b`` (the lock held), in a batching slot or beside them."""
        if len(b.members) == 1:
            request = b.members[0].request
        else:
            request = self._new_request()
            for m in b.members:
                m.start = len(request.writes)
                request.MergeFrom(m.request)
        timeout = max(0.0, min(m.deadline for m in b.members) - time.monotonic())
        try:
            b.pending = self._send(request, timeout)
        except (grpc.RpcError, ValueError) as exc:  # not sent: nothing applied
            b.error, b.unsent, b.done = exc, True, True
            return
        self._wire.append(b)
        self.commits += 1
        b.slot = slot

    def _collect(self, b: _Batch) -> None:
        """Wait for ``b``'s answer (once, whoever asks first), then send what waits."""
        with b.lock:
            if b.done or b.pending is None:  # answered, or not sent yet (``_sent`` first)
                return
            try:
                b.answer = b.pending.result()
            except Exception as exc:  # noqa: BLE001 - handed to every member
                b.error = exc
            finally:
                b.done = True
                with self._lock:
                    self._wire.remove(b)
                    while self._waiting and self._slot_free():
                        self._dispatch(self._waiting.popleft(), slot=True)

    def _sent(self, b: _Batch) -> None:
        """Return once ``b`` is on the wire (or failed to go), collecting what is ahead."""
        while True:
            with self._lock:
                if b.pending is not None or b.done:
                    return
                if self._slot_free():  # send the oldest waiting batch
                    self._dispatch(self._waiting.popleft(), slot=True)
                    continue
                ahead = next(w for w in self._wire if w.slot)
            self._collect(ahead)


class _Ticket:
    """One member's answer (``stores.inflight.Pending``)."""

    def __init__(self, group: GroupCommit, member: _Member, batch: _Batch) -> None:
        self._group = group
        self._member = member
        self._batch = batch
        self._asked = False
        self._value: Any = None
        self._error: Exception | None = None

    def result(self) -> Any:
        """Its answer (asked again: the same answer or error, nothing sent again)."""
        if not self._asked:
            self._asked = True
            try:
                self._value = self._result()
            except Exception as exc:  # noqa: BLE001 - kept for the next ask, raised below
                self._error = exc
        if self._error is not None:
            raise self._error
        return self._value

    def _result(self) -> Any:
        m, g, b = self._member, self._group, self._batch
        g._sent(b)  # noqa: SLF001
        g._collect(b)  # noqa: SLF001
        if b.error is None:
            if len(b.members) == 1:
                return b.answer
            return _slice(b.answer, m)
        if len(b.members) > 1 and (b.unsent or _nothing_applied(b.error)):
            # Refused whole: this member's writes go again, alone.
            return g._send(m.request, max(0.0, m.deadline - time.monotonic())).result()  # noqa: SLF001
        raise b.error


def _nothing_applied(exc: BaseException) -> bool:
    if not isinstance(exc, grpc.RpcError):
        return False  # not an answer of the store: it may have applied
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    return code in NOTHING_APPLIED


def _slice(answer: Any, m: _Member) -> Any:
    """The ``CommitResponse`` ``m``'s own Commit would have had: its writes' results."""
    out = type(answer)()
    out.write_results.extend(answer.write_results[m.start : m.start + len(m.request.writes)])
    out.commit_time.CopyFrom(answer.commit_time)
    return out

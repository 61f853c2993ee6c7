"""Reads of concurrent calls in one instance sent together as one BatchGetDocuments (group read).

Why: a warm enrichment reads one document beside its increment (the CV it was decided on,
``usecases.held_copies``), and a read's cost is mostly per call, not per document. Measured on
the Firestore emulator from 8 threads (docs/benchmarks/load-overview.md): a GetDocument cost
the emulator 0.34 ms of CPU and the client 0.23 ms; a BatchGetDocuments of 4 documents 0.12 and
0.19 ms a document, of 8 documents 0.07 and 0.15 ms.

How: ``stores.group_commit``'s batching slots, for reads. A read that finds the slot free and
nothing waiting goes out at once, alone, as it would have gone (one GetDocument a document: a
quiet instance waits for nothing and sends what it sent before). Otherwise it joins the batch
waiting for the slot (up to ``MAX_DOCUMENTS`` documents), which is sent as one
BatchGetDocuments as soon as the read in the slot is answered, by whichever member collects
first. Each member gets its own documents. A read that waits is collected by its caller after
the increment it was sent beside, so the wait mostly overlaps that increment's.

Failures: a read changes nothing. A batch refused whole (an error that is the store's answer
to the request, such as ``INVALID_ARGUMENT`` for one member's document name) is sent again
member by member, alone: one caller's bad name never fails another's read. Any other error
(``DEADLINE_EXCEEDED``, ``UNAVAILABLE``) reaches every member as its own read's would have.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from stores.group_commit import GroupCommit, _Batch, _Member, _Ticket
from stores.inflight import Pending

MAX_DOCUMENTS = 100
"""Documents of one batch (each member's counted whole; a member is never split)."""

Read = dict[str, Any]
"""A read's answer: each document's full name to its raw ``Document``, or None if absent."""
SendReads = Callable[[Sequence[str], float], Pending]
"""Reads documents (full names) with a timeout (seconds); ``result()`` answers a ``Read``."""


class GroupRead(GroupCommit):
    """One store's reads: ``in_flight`` batching slots, the rest sent in batches. ``alone``
    sends one member's own read (as the store reads without grouping); ``together`` one
    BatchGetDocuments of several members' documents."""

    def __init__(self, alone: SendReads, together: SendReads, in_flight: int = 1) -> None:
        super().__init__(alone, tuple, in_flight)
        self._together = together

    def start(self, request: Any, deadline: float) -> Pending:
        """``request`` (document full names) read now or with the next batch; the returned
        ``result()`` answers a ``Read`` of them or raises the ``grpc.RpcError`` its own read
        would have. ``deadline`` is a ``time.monotonic()`` instant."""
        names = tuple(dict.fromkeys(request))
        m = _Member(names, deadline)
        m.paths = frozenset(names)
        with self._lock:
            self.members += 1
            tail = self._waiting[-1] if self._waiting else None
            if tail is None and self._slot_free():
                self._dispatch(_Batch().add(m), slot=True)
            elif tail is not None and len(tail.paths | m.paths) <= MAX_DOCUMENTS:
                tail.add(m)
            else:
                self._waiting.append(_Batch().add(m))
        return _Ticket(self, m)

    def _send_batch(self, b: _Batch, timeout: float) -> Pending:
        """A lone member's own read, unchanged; several members' as one BatchGetDocuments."""
        if len(b.members) == 1:
            return self._send(b.members[0].request, timeout)
        return self._together(sorted(b.paths), timeout)

    def _answer(self, b: _Batch, m: _Member) -> Any:
        """``m``'s own documents of the batch's answer."""
        if len(b.members) == 1:
            return b.answer
        return {name: b.answer[name] for name in m.request}

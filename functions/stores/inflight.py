"""A unary gRPC call sent now and collected later by the same thread, with no other thread.

Why: a call's enrichment cache read is sent before its rate-limit increment and collected after
it. Sent by a reader thread, the read cost that thread's wake-up and two hand-offs of the
interpreter lock, and its answer was often decoded only after the increment's (the request
thread holds the lock as soon as its increment returns). A blocking unary call in grpcio is
three steps on the calling thread: prepare the operations, start them on a call with its own
completion queue, wait on that queue. ``InFlight`` does the first two now and the third when
collected, so the read and the increment are both on the wire while the thread waits for the
increment, and the read's answer waits in its own queue until the thread asks for it. Measured
side by side in one process (docs/benchmarks/load-overview.md): CPU per warm call 0.91x, whole
call p95 0.94x.

Those steps are grpcio's own (``grpc._channel``), not its public API. They are used only when
they look as this module expects (``supported``), and grpcio is pinned (functions/
requirements.txt); otherwise ``start`` returns a ``Deferred``, which makes the blocking call
when collected: the same answers and errors, without the overlap.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

try:  # grpcio's internals; checked by ``supported``
    from grpc import _channel as _gc  # type: ignore[import-untyped]
    from grpc._cython import cygrpc as _cy  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - a grpcio without them takes the blocking path
    _gc = _cy = None

log = logging.getLogger(__name__)

_MODULE_KNOWN = (
    _gc is not None
    and _cy is not None
    and hasattr(_cy, "PropagationConstants")
    and all(
        hasattr(_gc, name)
        for name in (
            "_UnaryUnaryMultiCallable",
            "_handle_event",
            "_end_unary_response_blocking",
            "_determine_deadline",
            "_common",
        )
    )
)
"""Whether grpcio's module has every step ``InFlight`` uses (checked once, at import)."""
_FIELDS = (
    "_channel",
    "_method",
    "_target",
    "_context",
    "_registered_call_handle",
    "_response_deserializer",
    "_prepare",
)
"""What ``InFlight`` reads of a multicallable."""


class Pending(Protocol):
    def result(self) -> Any:
        """The response, or the ``grpc.RpcError`` the blocking call would have raised."""
        ...


def supported(multicallable: Any) -> bool:
    """Whether ``multicallable`` is a grpcio unary-unary callable whose steps ``InFlight``
    knows (its class, its fields, and the module functions it uses)."""
    return (
        _MODULE_KNOWN
        and isinstance(multicallable, _gc._UnaryUnaryMultiCallable)  # noqa: SLF001
        and all(hasattr(multicallable, f) for f in _FIELDS)
    )


def start(multicallable: Any, request: Any, *, timeout: float, metadata: Any) -> Pending:
    """``multicallable(request, timeout=..., metadata=...)`` sent now, collected by
    ``result()``: an ``InFlight`` where ``supported``, a ``Deferred`` otherwise."""
    if supported(multicallable):
        return InFlight(multicallable, request, timeout=timeout, metadata=metadata)
    return Deferred(multicallable, request, timeout=timeout, metadata=metadata)


class Deferred:
    """The blocking call, made when collected (what ``start`` gives where ``InFlight`` cannot
    be used): nothing is sent before ``result()``; its deadline counts from the start."""

    def __init__(self, multicallable: Any, request: Any, *, timeout: float, metadata: Any) -> None:
        self._call = multicallable
        self._request = request
        self._end = time.monotonic() + timeout
        self._metadata = metadata

    def result(self) -> Any:
        left = max(0.0, self._end - time.monotonic())
        return self._call(self._request, timeout=left, metadata=self._metadata)


class InFlight:
    """One unary call on its own completion queue: sent by the constructor, collected by
    ``result()`` (on any thread, once; later calls answer the same). A call dropped without
    being collected is cancelled and drained when it is garbage (its queue would otherwise
    hold the call's resources until its deadline)."""

    def __init__(self, multicallable: Any, request: Any, *, timeout: float, metadata: Any) -> None:
        m = multicallable
        prepared = m._prepare(request, timeout, metadata, None, None)  # noqa: SLF001
        state, operations, deadline, refused = prepared
        if state is None:  # the request could not be serialised
            raise refused
        state.rpc_start_time = time.perf_counter()
        state.method = _gc._common.decode(m._method)  # noqa: SLF001
        state.target = _gc._common.decode(m._target)  # noqa: SLF001
        self._state = state
        self._deserialize = m._response_deserializer  # noqa: SLF001
        self._collected = False
        self._call = m._channel.segregated_call(  # noqa: SLF001
            _cy.PropagationConstants.GRPC_PROPAGATE_DEFAULTS,
            m._method,  # noqa: SLF001
            None,
            _gc._determine_deadline(deadline),  # noqa: SLF001
            metadata,
            None,
            ((operations, None),),
            m._context,  # noqa: SLF001
            m._registered_call_handle,  # noqa: SLF001
        )

    def result(self) -> Any:
        if not self._collected:
            self._collected = True
            event = self._call.next_event()
            _gc._handle_event(event, self._state, self._deserialize)  # noqa: SLF001
        return _gc._end_unary_response_blocking(self._state, self._call, False, None)  # noqa: SLF001

    def __del__(self) -> None:
        if getattr(self, "_collected", True):
            return
        self._collected = True
        try:
            self._call.cancel(_cy.StatusCode.cancelled, "not collected")
            self._call.next_event()
        except Exception:
            log.debug("an uncollected call could not be drained", exc_info=True)

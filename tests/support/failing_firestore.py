"""A Firestore gRPC service on loopback that fails every call as told: the real client library
and the store's own calls meet a server, not a stand-in for the library."""

from __future__ import annotations

from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc  # type: ignore[import-untyped]

SERVICE = "google.firestore.v1.Firestore"


def failing_firestore(
    answer: Callable[[str], tuple[grpc.StatusCode, str]],
) -> tuple[grpc.Server, str, list[str]]:
    """A started server whose ``Commit`` and ``GetDocument`` fail with ``answer(method)``
    (a status and its details); its ``host:port``, and the methods asked, in order."""
    asked: list[str] = []

    def handler(method: str) -> Any:
        def fail(request: bytes, context: grpc.ServicerContext) -> Any:
            asked.append(method)
            context.abort(*answer(method))

        return grpc.unary_unary_rpc_method_handler(fail)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handlers = {m: handler(m) for m in ("Commit", "GetDocument")}
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}", asked

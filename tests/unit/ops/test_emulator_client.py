"""The test and demo client of the callables (``scripts.devkit.emulator.call``) sends a request
again once when the functions emulator lost its connection to the function's worker, and only
then: a callable's own answers, errors included, are never sent twice."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import httpx
import pytest

from scripts.devkit.emulator import call, dropped_by_emulator


def test_the_emulators_socket_errors_are_told_apart_from_answers() -> None:
    reset = {"errno": -104, "code": "ECONNRESET", "syscall": "read"}
    assert dropped_by_emulator(httpx.Response(500, json=reset))
    assert dropped_by_emulator(httpx.Response(500, text="Error: socket hang up"))
    internal = {"error": {"status": "INTERNAL", "message": "Something went wrong (ref abc)."}}
    assert not dropped_by_emulator(httpx.Response(500, json=internal))
    assert not dropped_by_emulator(httpx.Response(200, json={"result": {"code": "ECONNRESET"}}))
    assert not dropped_by_emulator(httpx.Response(503, json=reset))
    assert not dropped_by_emulator(httpx.Response(500, text="<html>oops</html>"))


class _Emulator(BaseHTTPRequestHandler):
    """Answers each POST with the next of ``answers`` (status, JSON text), counting them."""

    answers: ClassVar[list[tuple[int, str]]] = []
    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.seen.append(self.rfile.read(int(self.headers["Content-Length"])).decode())
        status, text = self.answers.pop(0)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def emulator() -> Iterator[str]:
    _Emulator.answers, _Emulator.seen = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Emulator)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


RESET = (500, '{"errno": -104, "code": "ECONNRESET", "syscall": "read"}')


def test_a_dropped_request_is_sent_again_once(emulator: str) -> None:
    _Emulator.answers = [RESET, (200, '{"result": {"ok": true}}')]
    answer = call("fn", {"x": 1}, base_url=emulator)
    assert answer.result == {"ok": True}
    assert _Emulator.seen == ['{"data":{"x":1}}'] * 2


def test_dropped_twice_is_answered_as_it_is(emulator: str) -> None:
    _Emulator.answers = [RESET, RESET, (200, '{"result": {}}')]
    answer = call("fn", None, base_url=emulator)
    assert not answer.ok and answer.http_status == 500
    assert len(_Emulator.seen) == 2


def test_a_callables_error_is_not_sent_again(emulator: str) -> None:
    _Emulator.answers = [(500, '{"error": {"status": "INTERNAL", "message": "x"}}')]
    answer = call("fn", None, base_url=emulator)
    assert answer.status == "INTERNAL"
    assert len(_Emulator.seen) == 1
